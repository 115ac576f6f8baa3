package smtpd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mxq/smtpd"
)

// newTLSEnv is newEnv with STARTTLS offered.
func newTLSEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, func(c *setup) { c.TLS = store.TLSConfig() })
	return newEnv(t, nil, "mx1.example.org", opts...)
}

// greeted opens a session that has said EHLO, in TLS when inTLS.
func greeted(t *testing.T, addr string, inTLS bool) *client {
	t.Helper()
	c, _ := dial(t, addr)
	c.Expect("EHLO client.example.com", "250")
	if inTLS {
		c.starttls("")
		c.Expect("EHLO client.example.com", "250")
	}
	return c
}

// expectRefused reads the final reply of a transaction, which must start
// with want, and checks that the session is still in step.
func (c *client) expectRefused(want string) {
	c.t.Helper()
	if got := c.Read(); !strings.HasPrefix(got, want) {
		c.t.Errorf("got %q, want %s", got, want)
	}
	if got := c.Cmd("NOOP"); !strings.HasPrefix(got, "250") {
		c.t.Errorf("NOOP after refusal: %q (desynchronised?)", got)
	}
}

const envelope = "MAIL FROM:<a@evil.test>\r\nRCPT TO:<" + listAddr + ">\r\n"

// sendEnvelope sends MAIL and RCPT in one write, as a pipelining client
// does, and reads their replies.
func (c *client) sendEnvelope() {
	c.t.Helper()
	c.Send(envelope)
	for range 2 {
		if got := c.Read(); !strings.HasPrefix(got, "250") {
			c.t.Fatalf("envelope: %q, want 250", got)
		}
	}
}

// A message's own bytes are judged, whichever way it arrives: with DATA
// or BDAT, in plaintext or TLS, with its commands pipelined in the same
// write as the message or not. None of these may be queued.
func TestSmugglingEveryPath(t *testing.T) {
	e := newTLSEnv(t)
	bodies := []string{
		"From: a@evil.test\r\n\r\nhello\n.\r\nMAIL FROM:<x@y>\r\nbare\rcr\x00\r\n",
		"From: a@evil.test\r\n\r\nhello\r\n.\rMAIL FROM:<x@y>\r\n",
		"From: a@evil.test\r\n\r\nnul\x00\r\n",
		"From: a@evil.test\r\n\r\nbare lf at the end\n",      // BDAT only
		"From: a@evil.test\r\n\r\nbare cr at the end\r",      // BDAT only
		"From: a@evil.test\r\n\r\nno line ending at the end", // BDAT only
	}
	for _, inTLS := range []bool{false, true} {
		for _, pipelined := range []bool{false, true} {
			for _, cmd := range []string{"DATA", "BDAT"} {
				for i, body := range bodies {
					if cmd == "DATA" && !strings.HasSuffix(body, "\r\n") {
						continue // DATA would not end
					}
					name := fmt.Sprintf("tls=%v/pipelined=%v/%s/%d", inTLS, pipelined, cmd, i)
					t.Run(name, func(t *testing.T) {
						c := greeted(t, e.addr, inTLS)
						in := "DATA\r\n" + body + ".\r\n"
						if cmd == "BDAT" {
							in = fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body)
						}
						if pipelined {
							c.Send(envelope + in)
							for range 2 {
								if got := c.Read(); !strings.HasPrefix(got, "250") {
									t.Fatalf("envelope: %q, want 250", got)
								}
							}
						} else {
							c.Expect("MAIL FROM:<a@evil.test>", "250")
							c.Expect("RCPT TO:<"+listAddr+">", "250")
							c.Send(in)
						}
						if cmd == "DATA" {
							if got := c.Read(); !strings.HasPrefix(got, "354") {
								t.Fatalf("DATA: %q", got)
							}
						}
						c.expectRefused("554 5.6.0")
					})
				}
			}
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d, want 0: a message with a bare CR, LF or NUL was queued", n)
	}
	// A clean message still goes through every path.
	for _, inTLS := range []bool{false, true} {
		c := greeted(t, e.addr, inTLS)
		body := message(fmt.Sprintf("clean tls=%v", inTLS))
		c.Send(envelope + fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
		for _, want := range []string{"250", "250", "250 2.0.0 queued as"} {
			if got := c.Read(); !strings.HasPrefix(got, want) {
				t.Fatalf("tls=%v: %q, want %s", inTLS, got, want)
			}
		}
		if got := c.SendMail("a@example.com", []string{listAddr}, message(fmt.Sprintf("data tls=%v", inTLS))); !strings.HasPrefix(got, "250 2.0.0") {
			t.Fatalf("tls=%v DATA: %q", inTLS, got)
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != 4 {
		t.Errorf("depth = %d, want the 4 clean messages", n)
	}
}

// A first line that starts with a space or a tab would continue the last
// field mxd prepends, here our Authentication-Results, and so lend its
// authserv-id to forged results. It is refused, with DATA and BDAT.
func TestFoldedFirstLineRefused(t *testing.T) {
	ns := startDNS(t, map[string]string{})
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.Auth, c.AuthservID = checker(t, ns), domain })
	bodies := []string{
		"\t; dkim=pass header.d=paypal.com; dmarc=pass header.from=paypal.com\r\nFrom: <service@paypal.com>\r\n\r\nhi\r\n",
		" ; spf=pass smtp.mailfrom=paypal.com\r\nFrom: <service@paypal.com>\r\n\r\nhi\r\n",
		"\t\r\n\r\nhi\r\n",
	}
	for i, body := range bodies {
		for _, cmd := range []string{"DATA", "BDAT"} {
			t.Run(fmt.Sprintf("%s/%d", cmd, i), func(t *testing.T) {
				c := greeted(t, e.addr, false)
				c.sendEnvelope()
				if cmd == "DATA" {
					c.Expect("DATA", "354")
					c.Send(body + ".\r\n")
				} else {
					c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
				}
				c.expectRefused("554 5.6.0")
			})
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d, want 0", n)
	}
}
