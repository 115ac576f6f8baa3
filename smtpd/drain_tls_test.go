package smtpd_test

import (
	"strings"
	"testing"
)

// Draining closes a session in TLS that is between transactions with a
// 421 inside TLS, or with a clean close, never with plaintext that the
// client's TLS layer would take for a broken record.
func TestDrainIdleTLSSession(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(c *client)
	}{
		{"after EHLO", func(*client) {}},
		{"after a transaction", func(c *client) {
			if got := c.SendMail("a@example.com", []string{listAddr}, message("before drain")); !strings.HasPrefix(got, "250 2.0.0") {
				t.Fatalf("transaction: %q", got)
			}
		}},
		{"after RSET", func(c *client) {
			c.Expect("MAIL FROM:<a@example.com>", "250")
			c.Expect("RSET", "250")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTLSEnv(t)
			c := greeted(t, e.addr, true)
			tt.setup(c)
			// The drain closes sessions it finds waiting for their
			// client; repeat it until this one was.
			waitFor(t, "the session to be closed", func() bool {
				e.srv.SetDraining(true)
				return e.srv.Sessions() == 0
			})
			if got := c.Read(); !strings.HasPrefix(got, "421 4.3.2") {
				t.Errorf("idle TLS session while draining: %q, want 421 4.3.2 through TLS", got)
			}
			if got := c.Read(); got != "" {
				t.Errorf("after the 421: %q, want a clean end of the TLS session", got)
			}
		})
	}
}

// Between the 220 to STARTTLS and the handshake, the client expects TLS
// records: the drain closes without a plaintext 421.
func TestDrainBeforeHandshake(t *testing.T) {
	e := newTLSEnv(t)
	c := greeted(t, e.addr, false)
	c.Expect("STARTTLS", "220")
	waitFor(t, "the session to be closed", func() bool {
		e.srv.SetDraining(true)
		return e.srv.Sessions() == 0
	})
	if got := c.Read(); got != "" {
		t.Errorf("while the client starts TLS: %q, want the connection closed", got)
	}
}
