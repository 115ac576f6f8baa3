package smtpd_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/internal/smtptest"
	"mxq/smtpd"
)

// shortErrorSleep makes the waits for errors 1 ms a step: real waits,
// short enough for a test. What the server waited is in its metrics.
func shortErrorSleep(c *setup) { c.ErrorSleepTime = time.Millisecond }

// noErrorLimits is for a test that makes one session err on purpose,
// more often than a client may.
func noErrorLimits(c *setup) { c.SoftErrorLimit, c.HardErrorLimit = -1, -1 }

// metric is the value of the counter or gauge name, with the label
// limit=limit when limit is not empty; 0 when it has none yet.
func metric(t *testing.T, reg *prometheus.Registry, name, limit string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if limit != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != limit) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// wantMetric fails the test unless metric(name, limit) is want.
func wantMetric(t *testing.T, reg *prometheus.Registry, name, limit string, want float64) {
	t.Helper()
	if got := metric(t, reg, name, limit); got != want {
		t.Errorf("%s{limit=%q} = %v, want %v", name, limit, got, want)
	}
}

// pipeline writes s on its own goroutine, as a client that pipelines
// more than the server reads before it closes; a failed write (the
// server closed) ends it.
func pipeline(c *client, s string) {
	go func() {
		c.Conn().SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Conn().Write([]byte(s))
	}()
}

// readUntilClosed reads replies until the server closes the connection,
// and returns them. A reset counts as a close: the server closes with the
// rest of the client's pipeline unread.
func readUntilClosed(c *client) []string {
	var replies []string
	for {
		r := c.Read()
		if r == "" || strings.HasPrefix(r, "ERR ") && !strings.Contains(r, "timeout") {
			return replies
		}
		if strings.HasPrefix(r, "ERR ") {
			c.t.Fatalf("after %d replies: %s", len(replies), r)
		}
		replies = append(replies, r)
	}
}

// countPrefix counts the replies that start with prefix, and reports
// whether they are the first of replies.
func countPrefix(replies []string, prefix string) (n int, first bool) {
	for i, r := range replies {
		if strings.HasPrefix(r, prefix) {
			n++
			if n != i+1 {
				return n, false
			}
		}
	}
	return n, true
}

// The enumeration of the registry that the limits stop: thousands of
// RCPTs for lists that do not exist, pipelined on one session. The
// session answers 550 to 20 of them (smtpd_hard_error_limit), the last
// 10 of those after a wait that grows by a step each (past
// smtpd_soft_error_limit), then 421 4.7.0, and closes. No other RCPT
// reaches the registry.
func TestErrorLimitsStopEnumeration(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", shortErrorSleep)
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<probe@example.com>", "250")
	var sb strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&sb, "RCPT TO:<nolist%d@%s>\r\n", i, domain)
	}
	pipeline(c, sb.String())
	replies := readUntilClosed(c)

	if n, first := countPrefix(replies, "550 5.1.1"); n != 20 || !first {
		t.Errorf("%d replies 550 5.1.1 (first: %v), want 20 and nothing before them; replies: %q", n, first, replies)
	}
	if len(replies) != 21 || !strings.HasPrefix(replies[20], "421 4.7.0") {
		t.Fatalf("%d replies, the last %q; want 21, the last 421 4.7.0", len(replies), replies[len(replies)-1])
	}
	if got := strings.Count(e.logs.String(), "msg=\"rcpt refused\""); got != 20 {
		t.Errorf("%d RCPTs handled, want 20: none after the 421", got)
	}
	// Replies 11 to 20 waited 1 to 10 steps of 1 ms.
	wantMetric(t, e.reg, "mxd_limit_hits_total", "soft_error", 10)
	if got := metric(t, e.reg, "mxd_limit_error_delay_seconds_total", ""); math.Abs(got-0.055) > 1e-9 {
		t.Errorf("delays add up to %vs, want 55 steps of 1ms", got)
	}
	wantMetric(t, e.reg, "mxd_limit_hits_total", "hard_error", 1)
}

// go-smtp's own replies count too, and in TLS as in plaintext: here
// 502 to RCPT without MAIL, pipelined after STARTTLS.
func TestErrorLimitsInTLS(t *testing.T) {
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", shortErrorSleep, func(c *setup) { c.TLS = store.TLSConfig() })
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.StartTLS(&tls.Config{InsecureSkipVerify: true}, "")
	c.Expect("EHLO client.example.com", "250")
	pipeline(c, strings.Repeat("RCPT TO:<~alice/dev@"+domain+">\r\n", 100))
	replies := readUntilClosed(c)
	if n, first := countPrefix(replies, "502 "); n != 20 || !first || len(replies) != 21 || !strings.HasPrefix(replies[20], "421 4.7.0") {
		t.Errorf("replies %q: want 20 × 502, then 421 4.7.0", replies)
	}
	wantMetric(t, e.reg, "mxd_limit_hits_total", "soft_error", 10)
}

// A client below the soft limit waits for nothing, and a message queued
// starts its count again: errors are counted "without delivering mail".
func TestErrorLimitsSpareGoodClients(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", shortErrorSleep)
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	for round := range 3 {
		c.Expect("MAIL FROM:<alice@example.com>", "250")
		for range 9 {
			c.Expect("RCPT TO:<nolist@"+domain+">", "550 5.1.1")
		}
		c.Expect("RCPT TO:<"+listAddr+">", "250")
		c.Expect("DATA", "354")
		c.Send(message(fmt.Sprintf("round %d", round)) + ".\r\n")
		if r := c.Read(); !strings.HasPrefix(r, "250 2.0.0 queued as") {
			t.Fatalf("round %d: %q", round, r)
		}
	}
	c.Expect("QUIT", "221")
	for _, limit := range []string{"soft_error", "hard_error", "message_rate", "recipient_rate", "connection_rate"} {
		wantMetric(t, e.reg, "mxd_limit_hits_total", limit, 0)
	}
}

// A session waiting for its errors ends at once, with 421 4.3.2, when
// the host shuts down or starts to drain: the wait (an hour here) keeps
// neither from finishing.
func TestErrorDelayEndsAtShutdownAndDrain(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*smtpd.Server) error
	}{
		{"shutdown", func(s *smtpd.Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"drain", func(s *smtpd.Server) error { s.SetDraining(true); return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
				c.SoftErrorLimit, c.HardErrorLimit, c.ErrorSleepTime = 1, 100, time.Hour
			})
			c, _ := dial(t, e.addr)
			c.Expect("EHLO client.example.com", "250")
			c.Expect("MAIL FROM:<probe@example.com>", "250")
			c.Expect("RCPT TO:<nolist@"+domain+">", "550 5.1.1")
			c.Send("RCPT TO:<nolist2@" + domain + ">\r\n")
			waitFor(t, "the reply to be delayed", func() bool { return metric(t, e.reg, "mxd_limit_hits_total", "soft_error") == 1 })
			if err := tt.stop(e.srv); err != nil {
				t.Fatalf("%s: %v (the session did not end)", tt.name, err)
			}
			replies := readUntilClosed(c)
			if len(replies) != 2 || !strings.HasPrefix(replies[0], "550 5.1.1") || !strings.HasPrefix(replies[1], "421 4.3.2") {
				t.Errorf("replies %q: want the delayed 550 5.1.1, then 421 4.3.2", replies)
			}
			waitFor(t, "the session to end", func() bool { return e.srv.Sessions() == 0 })
		})
	}
}

// Each rate limit lets the client through up to its limit, then refuses
// with its reply, and counts the refusal in mxd_limit_hits_total.
func TestRateLimits(t *testing.T) {
	const hour = time.Hour // a window the test never sees move
	t.Run("connections", func(t *testing.T) {
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.ConnectionRateLimit, c.RateTimeUnit = 3, hour })
		for i := range 3 {
			c, greeting := dial(t, e.addr)
			if !strings.HasPrefix(greeting, "220 ") {
				t.Fatalf("connection %d: %q", i+1, greeting)
			}
			c.Expect("QUIT", "221")
		}
		c, greeting := smtptest.Dial(t, e.addr)
		if !strings.HasPrefix(greeting, "421 4.7.0") || c.Read() != "" {
			t.Errorf("4th connection: %q, want 421 4.7.0 and the connection closed", greeting)
		}
		wantMetric(t, e.reg, "mxd_limit_hits_total", "connection_rate", 1)
		wantMetric(t, e.reg, "mxd_connections_refused_total", "connection_rate", 1)
	})
	t.Run("messages", func(t *testing.T) {
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MessageRateLimit, c.RateTimeUnit = 2, hour })
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		if r := c.SendMail("alice@example.com", []string{listAddr}, message("first")); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("first message: %q", r)
		}
		c.Expect("MAIL FROM:<alice@example.com>", "250")
		c.Expect("RSET", "250")
		// A new connection is the same client.
		c2, _ := dial(t, e.addr)
		c2.Expect("EHLO client.example.com", "250")
		c2.Expect("MAIL FROM:<alice@example.com>", "450 4.7.1")
		wantMetric(t, e.reg, "mxd_limit_hits_total", "message_rate", 1)
	})
	t.Run("recipients", func(t *testing.T) {
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.RecipientRateLimit, c.RateTimeUnit = 3, hour })
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		c.Expect("MAIL FROM:<alice@example.com>", "250")
		c.Expect("RCPT TO:<nolist@"+domain+">", "550 5.1.1") // refused recipients count too
		c.Expect("RCPT TO:<~alice/one@"+domain+">", "250")
		c.Expect("RCPT TO:<~alice/two@"+domain+">", "250")
		c.Expect("RCPT TO:<~alice/three@"+domain+">", "450 4.7.1")
		c.Expect("DATA", "354")
		c.Send(message("two of three") + ".\r\n")
		if r := c.Read(); !strings.HasPrefix(r, "250 2.0.0 queued as") {
			t.Fatalf("message: %q", r)
		}
		wantMetric(t, e.reg, "mxd_limit_hits_total", "recipient_rate", 1)
	})
}

// The defaults let a busy sender through: 8 sessions at once from one
// address, each pipelining 25 messages with two recipients, meet no
// limit.
func TestDefaultLimitsSpareABusySender(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	const sessions, msgs = 8, 25
	errs := make(chan error, sessions)
	for s := range sessions {
		go func() { errs <- busySession(e.addr, s, msgs) }()
	}
	for range sessions {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	wantMetric(t, e.reg, "mxd_limit_clients", "", 1)
}

// busySession sends msgs messages in one session, each transaction's
// commands in one write, and returns the first reply that is not the
// one a sender under its limits gets.
func busySession(addr string, s, msgs int) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(conn)
	expect := func(want string) error {
		line, err := r.ReadString('\n')
		for err == nil && len(line) > 3 && line[3] == '-' {
			line, err = r.ReadString('\n')
		}
		if err != nil || !strings.HasPrefix(line, want) {
			return fmt.Errorf("session %d: %q (%v), want %s", s, line, err, want)
		}
		return nil
	}
	send := func(cmds string, want ...string) error {
		if _, err := io.WriteString(conn, cmds); err != nil {
			return err
		}
		for _, w := range want {
			if err := expect(w); err != nil {
				return err
			}
		}
		return nil
	}
	if err := send("EHLO client.example.com\r\n", "220", "250"); err != nil {
		return err
	}
	for m := range msgs {
		cmds := "MAIL FROM:<alice@example.com>\r\nRCPT TO:<" + listAddr + ">\r\nRCPT TO:<~bob/dev@" + domain + ">\r\nDATA\r\n"
		if err := send(cmds, "250", "250", "250", "354"); err != nil {
			return err
		}
		if err := send(message(fmt.Sprintf("s%d m%d", s, m))+".\r\n", "250 2.0.0 queued as"); err != nil {
			return err
		}
	}
	return send("QUIT\r\n", "221")
}
