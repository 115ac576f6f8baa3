package smtp

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// Server.OnReply sees every reply's code before the reply is written;
// when it ends the session, its reply follows the one it saw, the
// connection is closed, and the commands pipelined after (MAIL, NOOP)
// are neither handled nor answered: nothing is read or written after.
func TestOnReplyEndsSession(t *testing.T) {
	var codes []int
	it := newIOTest(t, func(s *Server) {
		s.OnReply = func(c *Conn, code int, enh EnhancedCode) *SMTPError {
			codes = append(codes, code)
			if code == 502 {
				return &SMTPError{Code: 421, EnhancedCode: EnhancedCode{4, 7, 0}, Message: "Too many errors"}
			}
			return nil
		}
	})
	c, rc := it.dial()
	c.send("EHLO client.example.com\r\nFOO\r\nRCPT TO:<b@example.org>\r\nMAIL FROM:<a@example.com>\r\nNOOP\r\n")
	c.expect("", "250-")
	c.expect("", "501 5.5.2")
	c.expect("", "502 5.5.1")
	c.expect("", "421 4.7.0 Too many errors")
	if rest, err := io.ReadAll(c.r); len(rest) > 0 || err != nil {
		t.Errorf("after the last reply: %q, %v; want the connection closed", rest, err)
	}
	ev := closed(t, rc)
	if want := []int{220, 250, 501, 502}; !slices.Equal(codes, want) {
		t.Errorf("OnReply saw %v, want %v", codes, want)
	}
	last := slices.IndexFunc(ev, func(e ioEvent) bool { return e.kind == "write" && strings.HasPrefix(e.data, "421") })
	for _, e := range ev[last+1:] {
		if e.kind != "close" {
			t.Errorf("after the last reply: %v, want the close alone", kinds(ev[last+1:]))
			break
		}
	}
}
