package smtp_test

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// expectReply reads one reply line and fails unless it starts with want.
func expectReply(t *testing.T, scanner *bufio.Scanner, what, want string) {
	t.Helper()
	if !scanner.Scan() {
		t.Fatalf("%s: no reply (%v), want %q", what, scanner.Err(), want)
	}
	if got := scanner.Text(); !strings.HasPrefix(got, want) {
		t.Fatalf("%s: reply %q, want %q", what, got, want)
	}
}

func startTransaction(t *testing.T, c net.Conn, scanner *bufio.Scanner) {
	t.Helper()
	io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\n")
	expectReply(t, scanner, "MAIL", "250 ")
	io.WriteString(c, "RCPT TO:<root@gchq.gov.uk>\r\n")
	expectReply(t, scanner, "RCPT", "250 ")
}

// A line over MaxLineLength in DATA gets one reply, after the real end of
// the data, and the session goes on; a line of MaxLineLength octets,
// CRLF included, is accepted.
func TestServer_DataLongLine(t *testing.T) {
	be, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()

	startTransaction(t, c, scanner)
	io.WriteString(c, "DATA\r\n")
	expectReply(t, scanner, "DATA", "354 ")
	io.WriteString(c, "Subject: long\r\n\r\n"+strings.Repeat("x", 2500)+"\r\nMAIL FROM:<evil@example.com>\r\n.\r\nNOOP\r\n")
	expectReply(t, scanner, "end of data", "554 5.6.0 ")
	expectReply(t, scanner, "NOOP after the refusal", "250 ")

	startTransaction(t, c, scanner)
	io.WriteString(c, "DATA\r\n")
	expectReply(t, scanner, "DATA", "354 ")
	longest := strings.Repeat("y", s.MaxLineLength-2) + "\r\n"
	io.WriteString(c, "Subject: longest\r\n\r\n"+longest+".\r\n")
	expectReply(t, scanner, "end of data", "250 ")
	if n := len(be.anonmsgs); n != 1 || string(be.anonmsgs[0].Data) != "Subject: longest\r\n\r\n"+longest {
		t.Fatalf("messages = %d, want the one with the longest line", n)
	}
}

// A BDAT chunk over MaxMessageBytes is discarded whatever its lines are
// like, and the session goes on.
func TestServer_BdatTooBigLongLines(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) { s.MaxMessageBytes = 1000 })
	defer s.Close()
	defer c.Close()

	startTransaction(t, c, scanner)
	chunk := strings.Repeat(strings.Repeat("z", 4000)+"\r\n", 3)
	io.WriteString(c, "BDAT "+strconv.Itoa(len(chunk))+" LAST\r\n"+chunk+"NOOP\r\n")
	expectReply(t, scanner, "BDAT", "552 5.3.4 ")
	expectReply(t, scanner, "NOOP after the chunk", "250 ")
}

// Lines in BDAT chunks are not command lines: without StrictLineEndings
// they are taken as they are, even when the chunk comes in the same
// packet as its command; with it, a message with a line over
// MaxLineLength is refused at its last chunk, like one sent with DATA.
func TestServer_BdatLongLine(t *testing.T) {
	for _, strict := range []bool{false, true} {
		be, s, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) { s.StrictLineEndings = strict })
		startTransaction(t, c, scanner)
		chunk := "Subject: long\r\n\r\n" + strings.Repeat("w", 4000) + "\r\n"
		io.WriteString(c, "BDAT "+strconv.Itoa(len(chunk))+" LAST\r\n"+chunk+"NOOP\r\n")
		want := "250 "
		if strict {
			want = "554 5.6.0 "
		}
		expectReply(t, scanner, "BDAT", want)
		expectReply(t, scanner, "NOOP after the chunk", "250 ")
		if !strict && (len(be.anonmsgs) != 1 || string(be.anonmsgs[0].Data) != chunk) {
			t.Errorf("messages = %d, want the chunk", len(be.anonmsgs))
		}
		s.Close()
		c.Close()
	}
}

// A parameter given twice, an empty value, and a value for a keyword
// that takes none are syntax errors.
func TestServer_ParamSyntax(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t, func(s *smtp.Server) {
		s.EnableSMTPUTF8, s.EnableDSN = true, true
	})
	defer s.Close()
	defer c.Close()

	for _, mail := range []string{"SIZE=1 SIZE=2", "SIZE=1 size=1", "SMTPUTF8=x", "SMTPUTF8=", "SIZE=", "=x", "BODY=7BIT BODY=8BITMIME"} {
		io.WriteString(c, "MAIL FROM:<root@nsa.gov> "+mail+"\r\n")
		expectReply(t, scanner, "MAIL "+mail, "501 5.5.4 ")
	}
	io.WriteString(c, "MAIL FROM:<root@nsa.gov> SMTPUTF8 SIZE=10\r\n")
	expectReply(t, scanner, "MAIL", "250 ")
	for _, rcpt := range []string{"NOTIFY=NEVER NOTIFY=NEVER", "ORCPT=rfc822;a@b ORCPT=rfc822;c@d", "NOTIFY="} {
		io.WriteString(c, "RCPT TO:<root@gchq.gov.uk> "+rcpt+"\r\n")
		expectReply(t, scanner, "RCPT "+rcpt, "501 5.5.4 ")
	}
}

// extendedBackend's sessions say, at each MAIL, whether the session is
// Extended.
type extendedBackend struct{ extended chan bool }

type extendedSession struct {
	*session
	conn     *smtp.Conn
	extended chan bool
}

func (b *extendedBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &extendedSession{&session{backend: &backend{}, anonymous: true}, c, b.extended}, nil
}

func (s *extendedSession) Mail(from string, opts *smtp.MailOptions) error {
	s.extended <- s.conn.Extended()
	return s.session.Mail(from, opts)
}

// Extended tells HELO from EHLO, after the last greeting.
func TestServer_Extended(t *testing.T) {
	be := &extendedBackend{extended: make(chan bool, 1)}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	scanner := bufio.NewScanner(c)
	expectReply(t, scanner, "greeting", "220 ")
	for _, greeting := range []string{"HELO", "EHLO", "HELO"} {
		io.WriteString(c, greeting+" localhost\r\nMAIL FROM:<root@nsa.gov>\r\n")
		for scanner.Scan() && !strings.HasPrefix(scanner.Text(), "250 ") {
		}
		expectReply(t, scanner, "MAIL", "250 ")
		if got, want := <-be.extended, greeting == "EHLO"; got != want {
			t.Errorf("after %s: Extended() = %v, want %v", greeting, got, want)
		}
	}
}
