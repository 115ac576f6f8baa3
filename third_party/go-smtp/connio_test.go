package smtp

// The behaviours of the server's I/O on the net.Conn it is given that
// mxd's connection wrapper (smtpd/conn.go in the repository holding this
// copy) relies on; third_party/README.md lists them. Each test fails if
// an upgrade changes one of them.

import (
	"bufio"
	"crypto/tls"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"go/types"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every command line, and every line of DATA, is read through one
// bufio.Reader of 4096 bytes over the connection: pipelined commands
// that arrived in one read are all answered before the next read. Each
// reply line is one Write, written at once (not held until the next
// read).
func TestConnIOPipelining(t *testing.T) {
	it := newIOTest(t, nil)
	c, rc := it.dial()
	c.send("EHLO client.example.com\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\n")
	c.expect("", "250-")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("DATA", "354")
	c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n")
	c.expect("", "250 ")
	c.expect("", "250 ")
	c.expect("", "221 ")
	ev := closed(t, rc)

	var reads int
	for i, e := range ev {
		switch {
		case e.kind == "read" && e.err == nil:
			reads++
			if e.size != 4096 {
				t.Errorf("read %d: a buffer of %d bytes, want 4096", reads, e.size)
			}
		case e.kind == "write":
			if !strings.HasSuffix(e.data, "\r\n") || strings.Count(e.data, "\n") != 1 {
				t.Errorf("write %d: %q, want one reply line", i, e.data)
			}
		}
	}
	// Between the read of the group and the next read: every reply.
	group := slices.IndexFunc(ev, func(e ioEvent) bool { return e.kind == "read" && strings.HasPrefix(e.data, "EHLO") })
	if group < 0 {
		t.Fatalf("no read of the group: %v", kinds(ev))
	}
	next := slices.IndexFunc(ev[group+1:], func(e ioEvent) bool { return e.kind == "read" })
	var replies []string
	for _, e := range ev[group+1 : group+1+next] {
		if e.kind == "write" {
			replies = append(replies, e.data[:4])
		}
	}
	want := []string{"250-", "250-", "250-", "250-", "250-", "250-", "250 ", "250 ", "250 ", "250 "}
	if !slices.Equal(replies, want) {
		t.Errorf("replies between the group's read and the next read: %q, want %q", replies, want)
	}
	if reads != 3 {
		t.Errorf("%d reads, want 3 (the group, DATA, the message with RSET and QUIT): %v", reads, kinds(ev))
	}
}

// The reply that opens DATA is written before Session.Data is called;
// the last reply of a session is written before the connection is
// closed.
func TestConnIOReplyBeforeDataAndClose(t *testing.T) {
	it := newIOTest(t, nil)
	c, rc := it.dial()
	c.expect("EHLO client.example.com", "250")
	c.expect("MAIL FROM:<a@example.com>", "250")
	c.expect("RCPT TO:<b@example.org>", "250")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("", "250")
	c.expect("QUIT", "221")
	ev := kinds(closed(t, rc))
	data := slices.Index(ev, "data")
	if data < 1 || ev[data-1] != "write 354" {
		t.Errorf("Data called after %v, want right after the 354 was written", ev[:data+1])
	}
	quit := slices.Index(ev, "write 221")
	if close := slices.Index(ev, "close"); quit < 0 || close != quit+1 {
		t.Errorf("events %v: want the 221 written, then the close", ev)
	}
}

// timeoutError is a net.Error that says timeout, as the wrapper's are.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return false }

// A read error that says timeout, between commands, gets 421 4.4.2 and
// ends the session; io.EOF and net.ErrClosed end it without a reply. In
// DATA the error reaches Session.Data's reader unchanged; after Data
// returns, the rest of the message is read (every read failing ends
// that at once), Data's reply is written, and the next command read gets
// the error again.
func TestConnIOReadErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want []string // writes after the failure, then close
	}{
		{"timeout", timeoutError{}, []string{"421 4.4.2 Idle timeout, bye bye\r\n", "close"}},
		{"EOF", io.EOF, []string{"close"}},
		{"closed", net.ErrClosed, []string{"close"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			it := newIOTest(t, nil)
			c, rc := it.dial()
			c.expect("EHLO client.example.com", "250")
			n := len(rc.snapshot())
			rc.failReads(tt.err)
			go io.WriteString(c.c, "NOOP\r\n") // ends the read in progress
			go io.Copy(io.Discard, c.r)
			if got := afterFailure(closed(t, rc)[n:]); !slices.Equal(got, tt.want) {
				t.Errorf("after the read error: %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("in DATA", func(t *testing.T) {
		it := newIOTest(t, nil)
		it.be.dataErr = make(chan error, 1)
		c, rc := it.dial()
		c.expect("EHLO client.example.com", "250")
		c.expect("MAIL FROM:<a@example.com>", "250")
		c.expect("RCPT TO:<b@example.org>", "250")
		c.expect("DATA", "354")
		c.send("Subject: slow\r\n\r\n")
		n := len(rc.snapshot())
		fail := timeoutError{}
		rc.failReads(fail)
		go io.WriteString(c.c, "more\r\n")
		go io.Copy(io.Discard, c.r)
		if err := <-it.be.dataErr; err != error(fail) {
			t.Errorf("Data's reader ended with %v (%T), want the read's error as it is", err, err)
		}
		want := []string{"451 4.4.2 Data failed\r\n", "421 4.4.2 Idle timeout, bye bye\r\n", "close"}
		if got := afterFailure(closed(t, rc)[n:]); !slices.Equal(got, want) {
			t.Errorf("after the read error: %q, want %q", got, want)
		}
	})
}

// afterFailure is the writes and the first close among ev.
func afterFailure(ev []ioEvent) []string {
	var out []string
	for _, e := range ev {
		switch e.kind {
		case "write":
			out = append(out, e.data)
		case "close":
			return append(out, "close")
		}
	}
	return out
}

// With ReadTimeout and WriteTimeout at zero, the server sets no deadline
// on the connection, in commands, DATA, BDAT or the end of a session;
// the wrapper's deadlines are the only ones. With them set, it does.
func TestConnIONoDeadlines(t *testing.T) {
	session := func(it *ioTest) []ioEvent {
		c, rc := it.dial()
		c.expect("EHLO client.example.com", "250")
		c.expect("MAIL FROM:<a@example.com>", "250")
		c.expect("RCPT TO:<b@example.org>", "250")
		c.expect("DATA", "354")
		c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
		c.expect("", "250")
		c.expect("MAIL FROM:<a@example.com>", "250")
		c.expect("RCPT TO:<b@example.org>", "250")
		c.send("BDAT 3\r\nabc")
		c.expect("", "250")
		c.send("BDAT 2 LAST\r\n\r\n")
		c.expect("", "250")
		c.expect("RSET", "250")
		c.expect("QUIT", "221")
		return closed(it.t, rc)
	}
	count := func(ev []ioEvent) (n int) {
		for _, e := range ev {
			if e.kind == "deadline" {
				n++
			}
		}
		return n
	}
	if n := count(session(newIOTest(t, nil))); n != 0 {
		t.Errorf("%d deadlines set with the timeouts at zero, want none", n)
	}
	it := newIOTest(t, func(s *Server) { s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute })
	if n := count(session(it)); n == 0 {
		t.Error("no deadline set with ReadTimeout and WriteTimeout: the test does not see them")
	}
}

// STARTTLS: the 220 reply is written, then the handshake reads and
// writes through the same connection; the TLS layer is put over it, so
// replies still reach it, now as TLS records; plaintext that came after
// the STARTTLS line is dropped, not read as commands; the session after
// TLS sees the TLS layer over the accepted conn as Conn(), the one
// before sees the accepted conn itself. Only the greeting and this reply
// are single-line 220 replies.
func TestConnIOStartTLS(t *testing.T) {
	it := newIOTest(t, nil)
	c, rc := it.dial()
	c.send("EHLO client.example.com\r\n")
	if got := c.reply(); !strings.Contains(got, "STARTTLS") {
		t.Fatalf("EHLO reply %q offers no STARTTLS", got)
	}
	c.send("STARTTLS\r\nNOOP\r\n")
	c.expect("", "220 ")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &ioClient{t: t, c: tc, r: bufio.NewReader(tc)}
	c.send("EHLO client.example.com\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "250-") {
		t.Errorf("first reply in TLS %q, want the EHLO reply (the NOOP sent with STARTTLS dropped)", got)
	}
	c.expect("QUIT", "221")
	go io.Copy(io.Discard, c.r) // close_notify
	ev := closed(t, rc)

	var sessions, plain220 []string
	starttls := -1
	for i, e := range ev {
		switch {
		case e.kind == "session":
			sessions = append(sessions, e.data)
		case e.kind == "write" && strings.HasPrefix(e.data, "220 "):
			plain220 = append(plain220, e.data)
			starttls = i
		}
	}
	if want := []string{"accepted conn", "TLS over the accepted conn"}; !slices.Equal(sessions, want) {
		t.Errorf("sessions saw Conn() as %q, want %q", sessions, want)
	}
	if len(plain220) != 2 || !strings.HasPrefix(plain220[0], "220 mx.example.org ESMTP") || !strings.HasPrefix(plain220[1], "220 2.0.0 Ready to start TLS") {
		t.Fatalf("220 replies %q, want the greeting and the STARTTLS reply", plain220)
	}
	after := ev[starttls+1:]
	firstWrite := slices.IndexFunc(after, func(e ioEvent) bool { return e.kind == "write" })
	if len(after) == 0 || after[0].kind != "read" || firstWrite < 0 || after[firstWrite].data[0] != 0x16 {
		t.Errorf("after the STARTTLS reply: %v, want the handshake's reads, then a handshake record", kinds(after[:min(len(after), 4)]))
	}
	for _, e := range after {
		if e.kind == "write" && (e.data[0] < 0x14 || e.data[0] > 0x17) {
			t.Errorf("after STARTTLS a write that is not a TLS record: %q", e.data)
		}
	}
}

// The server's own writes on the connection are all replies, written
// by writeResponse, and the only ones with code 220 are the greeting and
// the reply to STARTTLS.
func TestConnIOReplies(t *testing.T) {
	fset := token.NewFileSet()
	var code220, writes []string
	for _, name := range []string{"conn.go", "server.go", "data.go", "lengthlimit_reader.go"} {
		f, err := goparser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				recv, name := types.ExprString(sel.X), sel.Sel.Name
				switch {
				case name == "writeResponse" || name == "writeError":
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Value == "220" {
						code220 = append(code220, fn.Name.Name)
					}
				case strings.HasPrefix(name, "Write") && (strings.Contains(recv, "conn") || strings.Contains(recv, "text")),
					strings.HasPrefix(name, "Printf") && strings.Contains(recv, "text"),
					name == "DotWriter":
					writes = append(writes, fn.Name.Name+": "+recv+"."+name)
				}
				return true
			})
		}
	}
	if want := []string{"handleStartTLS", "greet"}; !slices.Equal(code220, want) {
		t.Errorf("220 replies written in %q, want %q", code220, want)
	}
	if want := slices.Repeat([]string{"writeResponse: c.text.PrintfLine"}, 3); !slices.Equal(writes, want) {
		t.Errorf("writes %q, want only writeResponse's", writes)
	}
}

// BDAT: Session.Data runs on a goroutine of its own, from the first
// chunk, while the connection's goroutine goes on reading commands; it
// reads the chunks from a pipe, never from the connection.
func TestConnIOBdatData(t *testing.T) {
	it := newIOTest(t, nil)
	it.be.hold = make(chan struct{})
	it.be.dataErr = make(chan error, 1)
	c, _ := it.dial()
	c.expect("EHLO client.example.com", "250")
	c.expect("MAIL FROM:<a@example.com>", "250")
	c.expect("RCPT TO:<b@example.org>", "250")
	c.expect("BDAT 0", "250")
	c.expect("NOOP", "250") // answered while Data waits
	close(it.be.hold)
	c.expect("BDAT 7 LAST\r\nhello\r\n", "250")
	if err := <-it.be.dataErr; err != nil {
		t.Errorf("Data's reader: %v", err)
	}
}
