package smtpd_test

import (
	"context"
	"strings"
	"testing"
)

// A DATA line over 2,000 octets is refused with one permanent reply,
// after the real end of data, and the session stays in step: plaintext
// or TLS, the rest of the message is not read as commands.
func TestLongDataLineRefused(t *testing.T) {
	e := newTLSEnv(t)
	long := strings.Repeat("x", 4000)
	for _, inTLS := range []bool{false, true} {
		c := greeted(t, e.addr, inTLS)
		c.sendEnvelope()
		c.Expect("DATA", "354")
		c.Send("Subject: long\r\n\r\n" + long + "\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<" + listAddr + ">\r\nDATA\r\n.\r\n")
		c.expectRefused("554 5.6.0")
		// The longest line allowed, 2,000 octets with its CRLF, passes.
		if got := c.SendMail("alice@example.com", []string{listAddr}, message("longest")+strings.Repeat("y", 1998)+"\r\n"); !strings.HasPrefix(got, "250 2.0.0") {
			t.Errorf("a line of 2,000 octets: %q, want 250", got)
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != 1 { // the second "longest" is a duplicate
		t.Errorf("depth %d, want 1", n)
	}
}

// A BDAT chunk over max_message_bytes is discarded whatever the length of
// its lines, and the session goes on; the same holds for a chunk sent
// without a transaction. Within the limit, a BDAT message is held to the
// DATA line limit.
func TestBdatLongLines(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxMessageBytes = 8000 })
	lines := strings.Repeat(strings.Repeat("z", 4000)+"\r\n", 4)
	c := greeted(t, e.addr, false)
	c.sendEnvelope()
	c.Send("BDAT " + itoa(len(lines)) + " LAST\r\n" + lines)
	c.expectRefused("552 5.3.4")
	c.Send("BDAT " + itoa(len(lines)) + " LAST\r\n" + lines)
	c.expectRefused("502 5.5.1")

	c.sendEnvelope()
	body := "Subject: long\r\n\r\n" + strings.Repeat("w", 3000) + "\r\n"
	c.Send("BDAT " + itoa(len(body)) + " LAST\r\n" + body)
	c.expectRefused("554 5.6.0")
	if got := c.SendMail("alice@example.com", []string{listAddr}, message("after")); !strings.HasPrefix(got, "250 2.0.0") {
		t.Errorf("after the refusals: %q", got)
	}
	if n, _ := e.q.Depth(context.Background()); n != 1 {
		t.Errorf("depth %d, want 1", n)
	}
}

// A message with no header section (no data at all, or an empty first
// line) is refused after its end, with DATA or BDAT, and logged without a
// queue id: nothing was queued. So is any message refused after DATA.
func TestEmptyMessageRefused(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := greeted(t, e.addr, false)
	for _, send := range []string{"BDAT 0 LAST\r\n", "BDAT 8 LAST\r\n\r\nbody\r\n", "DATA", "DATA\r\nbody"} {
		c.sendEnvelope()
		if data, ok := strings.CutPrefix(send, "DATA"); ok {
			c.Expect("DATA", "354")
			send = data + "\r\n.\r\n"
			if data == "" {
				send = ".\r\n"
			}
		}
		c.Send(send)
		c.expectRefused("554 5.6.0")
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth %d, want 0", n)
	}
	waitFor(t, "the transactions' log lines", func() bool { return strings.Count(e.logs.String(), "msg=transaction") == 4 })
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if !strings.Contains(l, "msg=transaction") {
			continue
		}
		if strings.Contains(l, "queue_id=") || !strings.Contains(l, " id=") || !strings.Contains(l, "code=554") {
			t.Errorf("refused transaction logged as %q, want an id, no queue_id, and the code", l)
		}
	}
}
