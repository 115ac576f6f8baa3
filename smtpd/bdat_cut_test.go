package smtpd_test

import (
	"context"
	"testing"
)

// A connection that ends in the middle of a BDAT chunk queues nothing,
// LAST or not: the message is not whole.
func TestBDATCutShort(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	for _, last := range []string{" LAST", ""} {
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		c.Expect("MAIL FROM:<alice@example.com>", "250")
		c.Expect("RCPT TO:<"+listAddr+">", "250")
		c.Send("BDAT 1000" + last + "\r\nFrom: a@example.com\r\nSubject: cut\r\n\r\nbody\r\n")
		c.Conn().Close()
	}
	waitFor(t, "the sessions to end", func() bool { return e.srv.Sessions() == 0 })
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("%d messages queued from chunks cut short", n)
	}
}
