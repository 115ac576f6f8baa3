package smtpd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue/queuetest"
	"mxq/smtpd"
)

func TestQueuedRecordAndReceived(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c, greet := dial(t, e.addr)
	if !strings.HasPrefix(greet, "220 mx1.example.org") {
		t.Fatalf("greeting %q", greet)
	}
	ehlo := c.Expect("EHLO client.example.com", "250")
	for _, want := range []string{"PIPELINING", "SIZE 33554432", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO reply lacks %s:\n%s", want, ehlo)
		}
	}
	c.Expect("MAIL FROM:<alice@example.com> SIZE=200 BODY=8BITMIME", "250")
	c.Expect("RCPT TO:<"+listAddr+">", "250")
	c.Expect("RCPT TO:<~alice/other+subscribe@LISTS.example.org> NOTIFY=NEVER", "250")
	c.Expect("DATA", "354")
	c.Send(message("first") + ".\r\n")
	got := c.Read()
	id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
	if !ok {
		t.Fatalf("end of data: %q, want 250 2.0.0 queued as <id>", got)
	}
	recs, err := e.q.Peek(context.Background(), 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Peek = %v, %v", recs, err)
	}
	r := recs[0]
	if r.ID != id || r.Host != "mx1.example.org" || r.From != "alice@example.com" || r.ClientIP != "127.0.0.1" || r.HELO != "client.example.com" {
		t.Errorf("record = %+v", r)
	}
	if r.FromParams["SIZE"] != "200" || r.FromParams["BODY"] != "8BITMIME" {
		t.Errorf("from params = %v", r.FromParams)
	}
	if len(r.Rcpts) != 2 || r.Rcpts[0].Addr != listAddr || r.Rcpts[1].Params["NOTIFY"] != "NEVER" {
		t.Errorf("rcpts = %+v", r.Rcpts)
	}
	if r.Arrived.IsZero() || r.Size == 0 || r.TLSVersion != "" {
		t.Errorf("arrived %v size %d tls %q", r.Arrived, r.Size, r.TLSVersion)
	}
	body := e.body(id)
	if !strings.HasPrefix(body, "Received: from client.example.com ([127.0.0.1])\r\n\tby mx1.example.org (mxd) with ESMTP id "+id) {
		t.Errorf("body does not start with our Received header:\n%s", body)
	}
	if !strings.HasSuffix(body, message("first")) {
		t.Errorf("body does not end with the message:\n%s", body)
	}
	if int64(len(body)) != r.Size {
		t.Errorf("size %d, body %d bytes", r.Size, len(body))
	}
	// The session goes on: a second transaction.
	if got := c.SendMail("", []string{listAddr}, message("bounce")); !strings.HasPrefix(got, "250 2.0.0 queued as") {
		t.Errorf("null sender: %q", got)
	}
	c.Expect("QUIT", "221")
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.MaxRecipients = 2
		c.MaxMessageBytes = 1000
	})
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	tests := []struct{ rcpt, want string }{
		{"nobody@" + domain, "550 5.1.1"},
		{"someone@example.net", "554 5.7.1"},
		{"~a/b%elsewhere.example@" + domain, "554 5.7.1"},
		{"host!~a/b@" + domain, "554 5.7.1"},
		{"\"~a/b@x\"@" + domain, "553 5.1.3"},
		{"~a/b@" + domain + ".", "553 5.1.2"},
		{"~a/b@lists..example.org", "553 5.1.2"},
		{"~ä/b@" + domain, "553 5.6.7"},
		{listAddr, "250"},
		{"~a/second@" + domain, "250"},
		{"~a/third@" + domain, "452 4.5.3"},
	}
	for _, tt := range tests {
		if got := c.Cmd("RCPT TO:<" + tt.rcpt + ">"); !strings.HasPrefix(got, tt.want) {
			t.Errorf("RCPT TO:<%s> = %q, want %s", tt.rcpt, got, tt.want)
		}
	}
	// Oversized: the reply comes after the real end of data, and the
	// session still works.
	c.Expect("DATA", "354")
	c.Send(strings.Repeat("0123456789012345678901234567890123456789\r\n", 100) + ".\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "552 5.3.4") {
		t.Errorf("oversized: %q, want 552 5.3.4", got)
	}
	if got := c.SendMail("alice@example.com", []string{listAddr}, message("small")); !strings.HasPrefix(got, "250 2.0.0") {
		t.Errorf("after oversized: %q", got)
	}
	if n, _ := e.q.Depth(context.Background()); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
}

func TestBareLineEndingsRefused(t *testing.T) {
	e := newTLSEnv(t)
	// Each body carries an SMTP smuggling variant followed by a fake
	// second transaction; none may be queued, and the session must not
	// desynchronise. In TLS as in plaintext: go-smtp's dot-unstuffing
	// drops a ".\r" at a line start, which must not hide the bare CR.
	variants := []string{"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\n", "\n.\r", "\r.\r\n", "\r\n.\r", "\r\n\x00.\r\n", "bare\nlf\r\n", "bare\rcr\r\n", "nul\x00\r\n"}
	for _, inTLS := range []bool{false, true} {
		for _, v := range variants {
			t.Run(fmt.Sprintf("tls=%v/%q", inTLS, v), func(t *testing.T) {
				c := greeted(t, e.addr, inTLS)
				c.Expect("MAIL FROM:<alice@example.com>", "250")
				c.Expect("RCPT TO:<"+listAddr+">", "250")
				c.Expect("DATA", "354")
				c.Send("Subject: smuggle\r\n\r\ntext" + v + "MAIL FROM:<evil@example.com>\r\nRCPT TO:<" + listAddr + ">\r\nDATA\r\nsmuggled\r\n.\r\n")
				c.expectRefused("554 5.6.0")
			})
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d, want 0: a smuggled message was queued", n)
	}
}

func TestQueueDownAndOutOfMemory(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		// Down for longer than sessions wait for it.
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.RideThrough = 300 * time.Millisecond })
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		c.Expect("MAIL FROM:<alice@example.com>", "250")
		c.Expect("RCPT TO:<"+listAddr+">", "250")
		e.redis.Stop()
		c.Expect("DATA", "354")
		c.Send(message("down") + ".\r\n")
		got := c.Read()
		if got != "451 4.3.0 Temporary queue failure, try again later" {
			t.Errorf("Redis down: %q, want 451 4.3.0 with no internal text", got)
		}
		e.redis.Restart()
		if got := c.SendMail("alice@example.com", []string{listAddr}, message("down")); !strings.HasPrefix(got, "250 2.0.0") {
			t.Errorf("Redis back: %q", got)
		}
	})
	t.Run("oom", func(t *testing.T) {
		r := queuetest.StartRedis(t, queuetest.MaxMemory("3mb"))
		e := newEnv(t, r, "mx1.example.org")
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 300)
		var got string
		for i := 0; i < 50; i++ {
			if got = c.SendMail("alice@example.com", []string{listAddr}, message(fmt.Sprint("oom ", i))+big); !strings.HasPrefix(got, "250") {
				break
			}
		}
		if got != "452 4.3.1 Insufficient system storage, try again later" {
			t.Errorf("maxmemory reached: %q, want 452 4.3.1", got)
		}
	})
}

func TestKill9AfterAccept(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	got := c.SendMail("alice@example.com", []string{listAddr}, message("durable"))
	id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
	if !ok {
		t.Fatalf("got %q", got)
	}
	e.redis.Kill()
	e.redis.Restart()
	recs, err := e.q.Peek(context.Background(), 10)
	if err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("after kill -9: %+v, %v; want %s", recs, err, id)
	}
}

func TestDropInData(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := startData(t, e.addr)
	c.Send("Subject: cut\r\n\r\nhalf a mess")
	c.Conn().Close()
	waitFor(t, "session to end", func() bool { return e.srv.Sessions() == 0 })
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	defer rdb.Close()
	keys, _ := rdb.Keys(context.Background(), "{mxq}:body:*").Result()
	if n, _ := e.q.Depth(context.Background()); n != 0 || len(keys) != 0 {
		t.Errorf("after drop: depth %d, body keys %v", n, keys)
	}
}

func TestSameMessageThroughTwoMX(t *testing.T) {
	r := queuetest.StartRedis(t)
	mx1 := newEnv(t, r, "mx1.example.org")
	mx2 := newEnv(t, r, "mx2.example.org")
	var ids []string
	for _, e := range []*env{mx1, mx2} {
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		got := c.SendMail("alice@example.com", []string{listAddr}, message("retried"))
		id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
		if !ok {
			t.Fatalf("%s: %q", e.addr, got)
		}
		ids = append(ids, id)
	}
	if ids[0] != ids[1] {
		t.Errorf("ids %v: the retry through mx2 should be answered with the first id", ids)
	}
	st, err := mx1.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 1 || st.Hosts["mx1.example.org"].Inflight != 1 || st.Hosts["mx2.example.org"].Inflight != 0 {
		t.Errorf("stats = %+v, want one entry, from mx1", st)
	}
}

func TestConnectionCaps(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxConnectionsPerIP = 2 })
	dial(t, e.addr)
	dial(t, e.addr)
	_, greet := dial(t, e.addr)
	if !strings.HasPrefix(greet, "421 4.7.0") {
		t.Errorf("third connection: %q, want 421 4.7.0", greet)
	}
}

func TestSlowSender(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.DataGrace = 200 * time.Millisecond
		c.MinDataRate = 1 << 20
	})
	c := startData(t, e.addr)
	c.Send("Subject: slow\r\n\r\n")
	// Then nothing: the deadline passes.
	if got := c.Read(); got != "451 4.4.2 Data too slow or timed out, closing connection" {
		t.Errorf("slow sender: %q, want 451 4.4.2 Data too slow…", got)
	}
	// The connection is closed after the reply: no desync.
	c.Send("MAIL FROM:<x@example.com>\r\n")
	// Closed means EOF, or a reset when the server closed with our
	// command unread.
	for got := c.Read(); got != "" && !strings.Contains(got, "connection reset"); got = c.Read() {
		if !strings.HasPrefix(got, "421") {
			t.Fatalf("after data timeout: %q, want the connection closed", got)
		}
	}
}

// A BDAT sender that goes quiet in the middle of a chunk gets the same
// temporary reply as a DATA sender, not a permanent one: go-smtp reads
// the chunk itself, and its read error goes to the session's Data to
// answer.
func TestSlowSenderBDAT(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.DataGrace = 200 * time.Millisecond
		c.MinDataRate = 1 << 20
	})
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	c.Expect("RCPT TO:<"+listAddr+">", "250")
	c.Send("BDAT 1000 LAST\r\nSubject: slow\r\n\r\n")
	// Then nothing: the deadline passes.
	if got := c.Read(); got != "451 4.4.2 Data too slow or timed out, closing connection" {
		t.Errorf("slow BDAT sender: %q, want 451 4.4.2 Data too slow…", got)
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("%d messages queued from a chunk that never ended", n)
	}
	c.Send("MAIL FROM:<x@example.com>\r\n")
	for got := c.Read(); got != "" && !strings.Contains(got, "connection reset"); got = c.Read() {
		if !strings.HasPrefix(got, "421") {
			t.Fatalf("after a BDAT data timeout: %q, want the connection closed", got)
		}
	}
}

func TestDrain(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	hb := &smtpd.Heartbeat{Server: e.srv, Beater: e.q, Interval: 20 * time.Millisecond, TTL: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hb.Run(ctx)

	open, _ := dial(t, e.addr) // in flight before the drain
	open.Expect("EHLO client.example.com", "250")
	open.Expect("MAIL FROM:<alice@example.com>", "250")
	open.Expect("RCPT TO:<"+listAddr+">", "250")

	if err := e.q.SetDraining(context.Background(), "mx1.example.org", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drain to take effect", e.srv.Draining)
	_, greet := dial(t, e.addr)
	if !strings.HasPrefix(greet, "421 4.3.2") {
		t.Errorf("new connection while draining: %q, want 421 4.3.2", greet)
	}
	if hb.Health() == nil {
		t.Error("healthy while draining")
	}
	// The open transaction finishes, then the session is closed.
	open.Expect("DATA", "354")
	open.Send(message("in flight") + ".\r\n")
	if got := open.Read(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Errorf("transaction in flight: %q", got)
	}
	if got := open.Read(); !strings.HasPrefix(got, "421 4.3.2") {
		t.Errorf("idle session while draining: %q, want 421 4.3.2", got)
	}
	waitFor(t, "sessions to end", func() bool { return e.srv.Sessions() == 0 })
	hosts, err := e.q.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || !hosts[0].Draining || hosts[0].Inflight != 1 {
		t.Errorf("hosts = %+v", hosts)
	}
	if err := e.q.SetDraining(context.Background(), "mx1.example.org", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drain to end", func() bool { return !e.srv.Draining() })
	if _, greet := dial(t, e.addr); !strings.HasPrefix(greet, "220") {
		t.Errorf("after drain: %q", greet)
	}
}

func TestShutdownDuringData(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := startData(t, e.addr)
	c.Send("Subject: shutdown\r\n\r\nfirst half\r\n")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	waitFor(t, "shutdown to begin", func() bool { _, g := tryDial(e.addr); return g != "220" })
	c.Send("second half\r\n.\r\n")
	got := c.Read()
	id, queued := strings.CutPrefix(got, "250 2.0.0 queued as ")
	switch {
	case queued:
		recs, _ := e.q.Peek(context.Background(), 10)
		if len(recs) != 1 || recs[0].ID != id {
			t.Errorf("250 %s but the queue holds %+v", id, recs)
		}
	case strings.HasPrefix(got, "4"):
	default:
		t.Errorf("end of data during shutdown: %q, want 250 (queued) or 4xx", got)
	}
	if got := c.Read(); !strings.HasPrefix(got, "421 4.3.2") && got != "" {
		t.Errorf("after the transaction: %q, want 421 4.3.2 or close", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// tryDial connects and returns the greeting's code ("" when refused).
func tryDial(addr string) (string, string) {
	c, err := netDial(addr)
	if err != nil {
		return "", ""
	}
	defer c.Close()
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := c.Read(buf)
	if n < 3 {
		return "", ""
	}
	return string(buf[:n]), string(buf[:3])
}

// /healthz follows the heartbeat: it fails once Redis has been unreachable
// for longer than sessions wait for it (ride_through), so a load balancer
// stops sending mail to an MX that cannot queue it, but not during an
// outage the sessions ride through.
func TestHealthFollowsQueue(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.RideThrough = 2 * time.Second })
	hb := &smtpd.Heartbeat{Server: e.srv, Beater: e.q, Interval: 20 * time.Millisecond, TTL: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hb.Run(ctx)
	waitFor(t, "healthy", func() bool { return hb.Health() == nil })
	e.redis.Stop()
	if err := hb.Health(); err != nil {
		t.Errorf("Health right after Redis stopped = %v, want healthy while sessions ride through", err)
	}
	waitFor(t, "unhealthy once Redis is down longer than ride_through", func() bool { return hb.Health() != nil })
	if err := hb.Health(); !strings.Contains(err.Error(), "queue unreachable") {
		t.Errorf("Health = %v, want queue unreachable", err)
	}
	e.redis.Restart()
	waitFor(t, "healthy again", func() bool { return hb.Health() == nil })
}
