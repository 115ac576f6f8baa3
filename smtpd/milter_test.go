package smtpd_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/d--j/go-milter"

	"mxq/queue"
)

// testMilter is a milter (go-milter's server side) that gives verdicts
// and faults rspamd cannot be made to give: resp at stage at, an error
// there (the connection closes), or no answer until the test ends.
type testMilter struct {
	gm.NoOpMilter
	at    string
	resp  *gm.Response
	fail  bool
	stall chan struct{}
	mods  func(m gm.Modifier) error
	seen  *atomic.Int64 // messages that reached the end of data
	// macros, when not nil, is called with the macros the MTA sent, at
	// each stage.
	macros func(stage string, m gm.Macros)
}

func (tm *testMilter) saw(stage string, m gm.Macros) {
	if tm.macros != nil {
		tm.macros(stage, m)
	}
}

func (tm *testMilter) answer(stage string) (*gm.Response, error) {
	if stage != tm.at {
		return gm.RespContinue, nil
	}
	if tm.stall != nil {
		<-tm.stall
	}
	if tm.fail {
		return nil, errors.New("test milter fails at " + stage)
	}
	return tm.resp, nil
}

func (tm *testMilter) Connect(_ string, _ string, _ uint16, _ string, m gm.Modifier) (*gm.Response, error) {
	tm.saw("connect", m)
	return tm.answer("connect")
}
func (tm *testMilter) Helo(_ string, m gm.Modifier) (*gm.Response, error) {
	tm.saw("helo", m)
	return gm.RespContinue, nil
}
func (tm *testMilter) MailFrom(_ string, _ string, m gm.Modifier) (*gm.Response, error) {
	tm.saw("mail", m)
	return tm.answer("mail")
}
func (tm *testMilter) RcptTo(rcpt string, _ string, m gm.Modifier) (*gm.Response, error) {
	tm.saw("rcpt", m)
	if strings.HasPrefix(rcpt, "<~bob/") {
		return tm.answer("rcpt_bob")
	}
	return tm.answer("rcpt")
}
func (tm *testMilter) Header(string, string, gm.Modifier) (*gm.Response, error) {
	return tm.answer("header")
}
func (tm *testMilter) BodyChunk([]byte, gm.Modifier) (*gm.Response, error) {
	return tm.answer("body")
}
func (tm *testMilter) EndOfMessage(m gm.Modifier) (*gm.Response, error) {
	tm.saw("eom", m)
	if tm.seen != nil {
		tm.seen.Add(1)
	}
	if tm.mods != nil && tm.at == "" {
		if err := tm.mods(m); err != nil {
			return nil, err
		}
	}
	if tm.at == "" {
		return gm.RespAccept, nil
	}
	return tm.answer("eom")
}

// serveMilter runs tm on a loopback port and returns its address as
// mxd's milters setting writes it.
func serveMilter(t *testing.T, tm *testMilter) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "inet:" + serveMilterOn(t, l, tm)
}

func serveMilterOn(t *testing.T, l net.Listener, tm *testMilter) string {
	startMilterOn(t, l, tm)
	return l.Addr().String()
}

// startMilterOn is serveMilterOn that returns the server, for a test
// that stops it.
func startMilterOn(t *testing.T, l net.Listener, tm *testMilter) *gm.Server {
	srv := gm.NewServer(gm.WithMilter(func() gm.Milter { return tm }),
		gm.WithActions(gm.OptAddHeader|gm.OptChangeHeader|gm.OptQuarantine),
		// A reply to every stage, so that a verdict can come at any.
		gm.WithProtocols(gm.OptNoUnknown))
	go srv.Serve(l)
	t.Cleanup(func() {
		if tm.stall != nil {
			select {
			case <-tm.stall:
			default:
				close(tm.stall)
			}
		}
		srv.Close()
	})
	return srv
}

func reject(code uint16, text string) *gm.Response {
	r, err := gm.RejectWithCodeAndReason(code, text)
	if err != nil {
		panic(err)
	}
	return r
}

// fastMilters are timeouts short enough for a test of faults.
func fastMilters(c *setup) {
	c.Milter.ConnectTimeout = 500 * time.Millisecond
	c.Milter.CommandTimeout = 500 * time.Millisecond
	c.Milter.ContentTimeout = 500 * time.Millisecond
	c.Milter.RideThrough = 0 // no waiting
}

// transaction runs MAIL, RCPT (to the list, and to ~bob's when bob) and
// DATA and returns the first reply that is not the expected one of the
// envelope, or the reply to the data.
func transaction(t *testing.T, addr string, bob bool) string {
	t.Helper()
	c, _ := dial(t, addr)
	c.Expect("EHLO client.example.com", "250")
	if r := c.Cmd("MAIL FROM:<alice@example.com>"); !strings.HasPrefix(r, "250") {
		return "MAIL " + r
	}
	if r := c.Cmd("RCPT TO:<" + listAddr + ">"); !strings.HasPrefix(r, "250") {
		return "RCPT " + r
	}
	if bob {
		if r := c.Cmd("RCPT TO:<~bob/x@" + domain + ">"); !strings.HasPrefix(r, "250") {
			return "RCPT bob " + r
		}
	}
	c.Expect("DATA", "354")
	c.Send(message("milter verdict") + ".\r\n")
	return c.Read()
}

// Every verdict a milter can give, at the stage it gives it: the reply,
// and whether the message was queued.
func TestMilterVerdicts(t *testing.T) {
	tests := []struct {
		name   string
		tm     *testMilter
		bob    bool
		want   string
		queued bool
	}{
		{"continue", &testMilter{}, false, "250 2.0.0 queued as", true},
		{"accept at mail", &testMilter{at: "mail", resp: gm.RespAccept}, false, "250 2.0.0 queued as", true},
		{"reject at mail", &testMilter{at: "mail", resp: gm.RespReject}, false, "MAIL 550 5.7.1 Command rejected", false},
		{"reject at connect", &testMilter{at: "connect", resp: gm.RespReject}, false, "MAIL 550 5.7.1 Command rejected", false},
		{"tempfail at rcpt", &testMilter{at: "rcpt", resp: gm.RespTempFail}, false, "RCPT 451 4.7.1 Service unavailable - try again later", false},
		{"reject one rcpt", &testMilter{at: "rcpt_bob", resp: reject(550, "5.1.1 bob is gone")}, true, "RCPT bob 550 5.1.1 bob is gone", false},
		{"reject in header", &testMilter{at: "header", resp: gm.RespReject}, false, "550 5.7.1 Command rejected", false},
		{"custom reply in body", &testMilter{at: "body", resp: reject(554, "5.7.0 not here")}, false, "554 5.7.0 not here", false},
		{"custom 4xx at end", &testMilter{at: "eom", resp: reject(452, "4.3.1 milter full")}, false, "452 4.3.1 milter full", false},
		{"tempfail at end", &testMilter{at: "eom", resp: gm.RespTempFail}, false, "451 4.7.1 Service unavailable - try again later", false},
		{"discard at end", &testMilter{at: "eom", resp: gm.RespDiscard}, false, "250 2.0.0 queued as", false},
		{"discard at rcpt", &testMilter{at: "rcpt", resp: gm.RespDiscard}, false, "250 2.0.0 queued as", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, tt.tm)), fastMilters)
			got := transaction(t, e.addr, tt.bob)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("reply %q, want %q", got, tt.want)
			}
			recs, err := e.q.Peek(context.Background(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if (len(recs) == 1) != tt.queued || len(recs) > 1 {
				t.Errorf("%d messages queued, want queued=%v", len(recs), tt.queued)
			}
			if strings.HasPrefix(tt.name, "discard") {
				if !strings.Contains(e.logs.String(), "discarded_by=inet:") {
					t.Errorf("discard not logged:\n%s", e.logs.String())
				}
				wantMetric(t, e.reg, "mxd_milter_discarded_total", "", 1)
			}
		})
	}
}

// Add, insert, change and delete header land in the stored message, in
// the order the milter sent them.
func TestMilterHeaderChanges(t *testing.T) {
	tm := &testMilter{mods: func(m gm.Modifier) error {
		for _, err := range []error{
			m.AddHeader("X-Added", "at the end"),
			m.InsertHeader(0, "X-First", "before the client's fields"),
			m.ChangeHeader(1, "Subject", "changed"),
			m.ChangeHeader(2, "X-Spam", ""), // the second X-Spam goes
			m.AddHeader("X-Folded", "one\ntwo"),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}}
	e := newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, tm)), fastMilters)
	c := startData(t, e.addr)
	c.Send("From: a@example.com\r\nSubject: original\r\nX-Spam: one\r\nX-Spam: two\r\n\r\nBody.\r\n.\r\n")
	id := queuedID(t, c.Read())
	stored := e.body(id)
	_, client, _ := strings.Cut(stored, "+0000\r\n") // after mxd's Received
	want := "X-First: before the client's fields\r\nFrom: a@example.com\r\nSubject: changed\r\nX-Spam: one\r\n" +
		"X-Added: at the end\r\nX-Folded: one\r\n\ttwo\r\n\r\nBody.\r\n"
	if client != want {
		t.Errorf("stored after Received:\n%q\nwant\n%q", client, want)
	}
}

// A milter that is down, slow, closes mid-message or answers nonsense:
// its default action, within its timeouts, and the session goes on.
func TestMilterFaults(t *testing.T) {
	down := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "inet:" + addr
	}
	tests := []struct {
		name   string
		milter func(t *testing.T) string
	}{
		{"down", down},
		{"slow at mail", func(t *testing.T) string {
			return serveMilter(t, &testMilter{at: "mail", stall: make(chan struct{})})
		}},
		{"slow at end", func(t *testing.T) string {
			return serveMilter(t, &testMilter{at: "eom", stall: make(chan struct{})})
		}},
		{"closes in the body", func(t *testing.T) string {
			return serveMilter(t, &testMilter{at: "body", fail: true})
		}},
		{"bad action", func(t *testing.T) string { return nonsense(t, []byte{'Z'}) }},
		{"huge packet", func(t *testing.T) string { return nonsense(t, nil) }},
	}
	for _, tt := range tests {
		for _, act := range []struct{ action, want string }{
			{"tempfail", "451 4.7.1 Service unavailable - try again later"},
			{"accept", "250 2.0.0 queued as"},
			{"reject", "550 5.7.1 Command rejected"},
		} {
			t.Run(tt.name+"/"+act.action, func(t *testing.T) {
				m := tt.milter(t)
				e := newEnv(t, nil, "mx1.example.org", withMilters(m), fastMilters,
					func(c *setup) { c.Milter.DefaultAction = act.action })
				c, _ := dial(t, e.addr)
				c.Expect("EHLO client.example.com", "250")
				got := c.Cmd("MAIL FROM:<alice@example.com>")
				if strings.HasPrefix(got, "250") {
					c.Expect("RCPT TO:<"+listAddr+">", "250")
					c.Expect("DATA", "354")
					c.Send(message("fault") + ".\r\n")
					got = c.Read()
				}
				if !strings.HasPrefix(strings.TrimPrefix(got, "MAIL "), act.want) {
					t.Errorf("reply %q, want %q", got, act.want)
				}
				// The session goes on.
				c.Expect("RSET", "250")
				c.Expect("QUIT", "221")
				if !strings.Contains(e.logs.String(), `milter failed`) {
					t.Errorf("no milter failure logged:\n%s", e.logs.String())
				}
			})
		}
	}
}

// nonsense is a milter that negotiates, then answers the first command
// after it with a packet of code reply, or, when reply is nil, claims a
// packet of 256 MiB.
func nonsense(t *testing.T, reply []byte) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				read := func() bool {
					var n uint32
					if binary.Read(nc, binary.BigEndian, &n) != nil {
						return false
					}
					_, err := io.CopyN(io.Discard, nc, int64(n))
					return err == nil
				}
				if !read() {
					return
				}
				// OPTNEG: version 6, no actions, no protocol options.
				nc.Write([]byte{0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0})
				for read() {
					if reply == nil {
						nc.Write([]byte{0x10, 0, 0, 0})
						continue
					}
					var hdr [4]byte
					binary.BigEndian.PutUint32(hdr[:], uint32(len(reply)))
					nc.Write(append(hdr[:], reply...))
				}
			}()
		}
	}()
	return "inet:" + l.Addr().String()
}

// A milter that is down for a moment (a restart) is ridden through: the
// message waits for it instead of getting the default action.
func TestMilterRestartRiddenThrough(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down
	var seen atomic.Int64
	e := newEnv(t, nil, "mx1.example.org", withMilters("inet:"+addr), fastMilters,
		func(c *setup) { c.Milter.RideThrough = 20 * time.Second })
	done := make(chan string, 1)
	go func() { done <- transaction(t, e.addr, false) }()
	// The session has asked for the milter and is waiting for it.
	waitFor(t, "the session to wait for the milter", func() bool { return e.srv.MiltersWaiting() == 1 })
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveMilterOn(t, l, &testMilter{seen: &seen})
	if got := <-done; !strings.HasPrefix(got, "250 2.0.0 queued as") {
		t.Fatalf("reply %q, want queued", got)
	}
	if seen.Load() != 1 {
		t.Errorf("milter saw %d messages, want 1", seen.Load())
	}
}

// Connections to a milter are reused, one message at a time.
func TestMilterConnectionsReused(t *testing.T) {
	var seen atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: l}
	m := "inet:" + serveMilterOn(t, counted, &testMilter{seen: &seen})
	e := newEnv(t, nil, "mx1.example.org", withMilters(m), fastMilters)
	for range 5 {
		if got := transaction(t, e.addr, false); !strings.HasPrefix(got, "250 2.0.0 queued as") {
			t.Fatalf("reply %q", got)
		}
	}
	if seen.Load() != 5 {
		t.Errorf("milter saw %d messages, want 5", seen.Load())
	}
	if n := counted.n.Load(); n != 1 {
		t.Errorf("%d connections to the milter for 5 messages one after the other, want 1", n)
	}
}

type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// The dedup key still covers the header section as it arrived, which a
// milter edits and mxd keeps out of the spool: the same message twice is
// queued once; two that differ only in their header are two, small or
// spooled.
func TestMilterDedupCoversHeader(t *testing.T) {
	tm := &testMilter{mods: func(m gm.Modifier) error { return m.AddHeader("X-Scanned", "yes") }}
	e := newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, tm)), fastMilters)
	for _, size := range []int{100, 2 << 20} {
		body := bigBody("dedup", size)
		_, text, _ := strings.Cut(body, "\r\n\r\n")
		send := func(msgID string) string {
			c := startData(t, e.addr)
			c.Send("Message-ID: <" + msgID + ">\r\nSubject: dedup\r\n\r\n" + text + ".\r\n")
			return queuedID(t, c.Read())
		}
		a := send("a@example.com")
		again := send("a@example.com")
		b := send("b@example.com")
		if again != a {
			t.Errorf("size %d: the same message again queued as %s, want the duplicate of %s", size, again, a)
		}
		if b == a {
			t.Errorf("size %d: a message with another Message-ID taken for a duplicate of %s", size, a)
		}
		if stored := e.body(b); !strings.Contains(stored, "Message-ID: <b@example.com>\r\nSubject: dedup\r\nX-Scanned: yes\r\n\r\n") ||
			!strings.HasSuffix(stored, text) {
			t.Errorf("size %d: stored message lacks the edited header or the body", size)
		}
	}
}

// A message with no body, with or without the empty line after its
// header, still reaches the milter's end of data (go-milter wants a body
// chunk first: it gets an empty one), and a verdict on that chunk counts.
func TestMilterEmptyBody(t *testing.T) {
	for _, data := range []string{"Subject: empty\r\n\r\n", "Subject: no empty line\r\n"} {
		var seen atomic.Int64
		e := newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, &testMilter{seen: &seen})), fastMilters)
		c := startData(t, e.addr)
		c.Send(data + ".\r\n")
		queuedID(t, c.Read())
		if seen.Load() != 1 {
			t.Errorf("%q: milter saw %d ends of data, want 1", data, seen.Load())
		}
		e = newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, &testMilter{at: "body", resp: reject(554, "5.7.0 empty")})), fastMilters)
		c = startData(t, e.addr)
		c.Send(data + ".\r\n")
		if got, want := c.Read(), "554 5.7.0 empty"; got != want {
			t.Errorf("%q: reply %q, want %q", data, got, want)
		}
	}
}

// A quarantine queues the message held, with the milter's header
// changes: answered 250, in the hold stream and not in the queue (nor in
// its MX host's unconsumed count), counted and logged, the same message
// again a duplicate of it; released, the consumers get it; purged, its
// body is gone.
func TestMilterQuarantineHeld(t *testing.T) {
	tm := &testMilter{mods: func(m gm.Modifier) error {
		if err := m.AddHeader("X-Quarantined", "yes"); err != nil {
			return err
		}
		return m.Quarantine("looks like phishing")
	}}
	ml := serveMilter(t, tm)
	e := newEnv(t, nil, "mx1.example.org", withMilters(ml), fastMilters)
	ctx := context.Background()
	send := func(msgID string) string {
		c := startData(t, e.addr)
		c.Send("From: a@example.com\r\nMessage-ID: <" + msgID + ">\r\nSubject: held\r\n\r\nBody.\r\n.\r\n")
		return queuedID(t, c.Read())
	}
	id := send("one@example.com")
	if again := send("one@example.com"); again != id {
		t.Errorf("the same message again queued as %s, want the duplicate of %s", again, id)
	}
	other := send("two@example.com")

	if recs, err := e.q.Peek(ctx, 10); err != nil || len(recs) != 0 {
		t.Fatalf("queue has %d messages (err %v), want none: held messages are not for the consumers", len(recs), err)
	}
	if n, err := e.q.Inflight(ctx, "mx1.example.org"); err != nil || n != 0 {
		t.Errorf("mx1 has %d unconsumed (err %v), want 0: a held message must not keep its host from draining", n, err)
	}
	held, err := e.q.HeldMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].ID != id || held[1].ID != other {
		t.Fatalf("held %+v, want %s and %s", held, id, other)
	}
	if want := ml + ": looks like phishing"; held[0].Reason != want {
		t.Errorf("reason %q, want %q", held[0].Reason, want)
	}
	body, err := e.q.HeldBody(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	if !strings.Contains(string(b), "Subject: held\r\nX-Quarantined: yes\r\n\r\nBody.\r\n") {
		t.Errorf("held message lacks the milter's header field:\n%s", b)
	}
	wantMetric(t, e.reg, "mxd_milter_held_total", "", 2)
	if !strings.Contains(e.logs.String(), `held="`+ml+`: looks like phishing"`) {
		t.Errorf("the transaction's log line does not say it is held:\n%s", e.logs.String())
	}

	if err := e.q.ReleaseHeld(ctx, id); err != nil {
		t.Fatal(err)
	}
	if recs, err := e.q.Peek(ctx, 10); err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Errorf("after release the queue has %v (err %v), want %s", recs, err, id)
	}
	if err := e.q.PurgeHeld(ctx, other); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, e.redis, "{mxq}:body:"+other); len(keys) != 0 {
		t.Errorf("purged message's body left: %v", keys)
	}
	if held, err := e.q.HeldMessages(ctx); err != nil || len(held) != 0 {
		t.Errorf("held after release and purge: %v (err %v), want none", held, err)
	}
	if err := e.q.ReleaseHeld(ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("release of a released message: %v, want ErrNotFound", err)
	}
}

// A milter restarted between messages leaves every pooled connection
// dead: the next message finds that out, drops them (giving their places
// in the pool back) and gets a new one, without the default action.
func TestMilterRestartWithPooledConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	const n = 3
	// The pool's bound is the three connections that n messages at once
	// need.
	e := newEnv(t, nil, "mx1.example.org", withMilters("inet:"+addr), fastMilters,
		func(c *setup) { c.Milter.MaxConnections = n })
	// concurrently sends n messages, which the milter holds at the end of
	// data until it has all of them: they need n connections at once.
	concurrently := func(l net.Listener) *gm.Server {
		var seen atomic.Int64
		tm := &testMilter{at: "eom", resp: gm.RespAccept, stall: make(chan struct{}), seen: &seen}
		srv := startMilterOn(t, l, tm)
		done := make(chan string, n)
		for range n {
			go func() { done <- transaction(t, e.addr, false) }()
		}
		waitFor(t, "every message at the milter's end of data", func() bool { return seen.Load() == n })
		close(tm.stall)
		for range n {
			if got := <-done; !strings.HasPrefix(got, "250 2.0.0 queued as") {
				t.Errorf("reply %q, want queued", got)
			}
		}
		return srv
	}
	concurrently(l).Close() // closes the pooled connections too
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	concurrently(l)
	if strings.Contains(e.logs.String(), "milter failed") {
		t.Errorf("a failure logged:\n%s", e.logs.String())
	}
}

// The macros that rspamd and the common milters read, at the stages
// Postfix sends them: {i} is the queue id the message gets, the client's
// address and TLS as the session has them, no {auth_*} (nobody
// authenticates at an MX).
func TestMilterMacros(t *testing.T) {
	for _, tr := range transports {
		if tr.name == "BDAT" {
			continue // the same stages as DATA
		}
		t.Run(tr.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]string{}
			tm := &testMilter{macros: func(stage string, m gm.Macros) {
				mu.Lock()
				defer mu.Unlock()
				for _, name := range []gm.MacroName{gm.MacroMTAFQDN, gm.MacroDaemonName, gm.MacroClientAddr, gm.MacroClientName,
					gm.MacroTlsVersion, gm.MacroCipher, gm.MacroQueueId, gm.MacroMailAddr, gm.MacroRcptAddr,
					gm.MacroAuthType, gm.MacroAuthAuthen, gm.MacroAuthAuthor} {
					if v, ok := m.GetEx(name); ok {
						got[stage+" "+string(name)] = v
					}
				}
			}}
			e := milterEnv(t, serveMilter(t, tm))
			id := queuedID(t, tr.send(t, e.addr, message("macros")))
			mu.Lock()
			defer mu.Unlock()
			want := map[string]string{
				"connect j": "mx1.example.org", "connect {daemon_name}": "mxd",
				"connect {client_addr}": "127.0.0.1", "connect {client_name}": "unknown",
				"mail i": id, "mail {mail_addr}": "alice@example.com", // DATA's sender
				"rcpt i": id, "rcpt {rcpt_addr}": listAddr,
				"eom i": id,
			}
			if tr.name == "STARTTLS" {
				want["mail {mail_addr}"] = "a@evil.test" // the sender of envelope
				want["helo {tls_version}"] = "TLSv1.3"
				want["helo {cipher}"] = "TLS_AES_128_GCM_SHA256"
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for k, v := range got {
				if strings.Contains(k, "{auth_") && v != "" {
					t.Errorf("%s = %q, want none", k, v)
				}
				if strings.Contains(k, "{tls_version}") && tr.name != "STARTTLS" {
					t.Errorf("%s = %q without TLS", k, v)
				}
			}
		})
	}
}

// Connections to a milter are bounded: with two allowed, five messages
// at once are served two at a time on two connections, the others
// waiting for one (not refused), and all are queued.
func TestMilterConnectionsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: l}
	var seen atomic.Int64
	tm := &testMilter{at: "eom", resp: gm.RespAccept, stall: make(chan struct{}), seen: &seen}
	m := "inet:" + serveMilterOn(t, counted, tm)
	e := newEnv(t, nil, "mx1.example.org", withMilters(m), func(c *setup) {
		c.Milter.MaxConnections = 2
		c.Milter.ConnectTimeout = time.Minute // the wait for a free connection
	})
	const n = 5
	done := make(chan string, n)
	for range n {
		go func() { done <- transaction(t, e.addr, false) }()
	}
	waitFor(t, "two messages at the milter and three waiting for a connection", func() bool {
		return seen.Load() == 2 && e.srv.MiltersWaiting() == n-2
	})
	if got := counted.n.Load(); got != 2 {
		t.Errorf("%d connections to the milter, want 2", got)
	}
	close(tm.stall)
	for range n {
		if got := <-done; !strings.HasPrefix(got, "250 2.0.0 queued as") {
			t.Errorf("reply %q, want queued", got)
		}
	}
	if got := counted.n.Load(); got != 2 || seen.Load() != n {
		t.Errorf("%d connections for %d messages, want 2 for %d", got, seen.Load(), n)
	}
}

// Milters apply in order, each with its own default action: a first one
// that is down with default_action=accept in its braces is passed over
// (the global default is tempfail), and the second decides.
func TestMilterOwnDefaultAction(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	var seen atomic.Int64
	second := serveMilter(t, &testMilter{seen: &seen})
	e := newEnv(t, nil, "mx1.example.org", withMilters("{ inet:"+down+", default_action=accept, connect_timeout=200ms }", second), fastMilters)
	if got := transaction(t, e.addr, false); !strings.HasPrefix(got, "250 2.0.0 queued as") {
		t.Fatalf("reply %q, want queued", got)
	}
	if seen.Load() != 1 {
		t.Errorf("the second milter saw %d messages, want 1", seen.Load())
	}
	if want := `milters="inet:` + down + `=fault:accept ` + second + `=accept"`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, e.logs.String())
	}
	wantMetric(t, e.reg, "mxd_milter_faults_total", "unavailable", 1) // labels sort: kind, milter
}

// A milter's refusal of one recipient refuses that one only: the message
// goes on to the others, and the milter sees it to its end.
func TestMilterRefusesOneRecipient(t *testing.T) {
	var seen atomic.Int64
	tm := &testMilter{at: "rcpt_bob", resp: reject(550, "5.1.1 bob is gone"), seen: &seen}
	e := newEnv(t, nil, "mx1.example.org", withMilters(serveMilter(t, tm)), fastMilters)
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	c.Expect("RCPT TO:<~bob/x@"+domain+">", "550 5.1.1 bob is gone")
	c.Expect("RCPT TO:<"+listAddr+">", "250")
	c.Expect("DATA", "354")
	c.Send(message("one refused") + ".\r\n")
	id := queuedID(t, c.Read())
	recs, err := e.q.Peek(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != id || len(recs[0].Rcpts) != 1 || recs[0].Rcpts[0].Addr != listAddr {
		t.Errorf("queued %+v, want %s to %s alone", recs, id, listAddr)
	}
	if seen.Load() != 1 {
		t.Errorf("the milter saw %d ends of data, want 1", seen.Load())
	}
}
