package dnsctl_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/internal/smtptest"
	"mxq/queue"
	"mxq/smtpd"
)

// startMxd runs the real SMTP receiver for host on l, with its heartbeat;
// opts change its settings and live objects.
func startMxd(t *testing.T, e *env, host string, opts ...func(*smtpd.Config, *smtpd.Deps)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.q.AddRecipients(ctx, "~*/*@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	cfg := smtpd.Defaults()
	cfg.Hostname, cfg.Domains, cfg.Version = host, []string{"lists.example.org"}, "test"
	deps := smtpd.Deps{Queue: smtpd.QueueOf(e.q), Recipients: smtpd.NewRecipients(e.q, 50*time.Millisecond),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := smtpd.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(e.listeners[host])
	hb := &smtpd.Heartbeat{Server: srv, Beater: e.q, Interval: 50 * time.Millisecond, TTL: time.Second}
	done := make(chan struct{})
	go func() { hb.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	waitFor(t, host+"'s first heartbeat", func() bool { return e.alive(host) })
}

// TestDrainWithMxd runs the real mxd on mx2: during the drain a session
// that was open finishes its message, a new connection gets 421, and the
// drain does not say safe while mx2's message is unconsumed: neither while
// it is queued nor once a consumer has fetched it, only after the ack.
func TestDrainWithMxd(t *testing.T) {
	e := newEnv(t, dnstest.StartKnot, "mx1.example.org", "mx3.example.org")
	const host = "mx2.example.org"
	startMxd(t, e, host)
	addr := e.listeners[host].Addr().String()

	open, greeting := smtptest.Dial(t, addr)
	if !strings.HasPrefix(greeting, "220") {
		t.Fatalf("greeting %q", greeting)
	}
	open.Expect("EHLO sender.example.com", "250")
	open.Expect("MAIL FROM:<alice@example.com>", "250")
	open.Expect("RCPT TO:<~bob/dev@lists.example.org>", "250")

	m := e.maintenance()
	fleet := &countingFleet{Fleet: m.Fleet}
	m.Fleet = fleet
	progress := m.Progress
	events := make(chan dnsctl.Event, 1000)
	m.Progress = func(ev dnsctl.Event) { progress(ev); events <- ev }
	result := make(chan error, 1)
	go func() { _, err := m.Drain(context.Background(), host); result <- err }()

	waitEvent(t, events, result, "sessions 1, unconsumed 0, mxd confirms draining: yes")
	if _, greeting := smtptest.Dial(t, addr); !strings.HasPrefix(greeting, "421") {
		t.Errorf("new connection while draining: %q, want 421", greeting)
	}
	open.Expect("DATA", "354")
	open.Expect("Subject: during the drain\r\nMessage-ID: <drain@example.com>\r\n\r\nhello\r\n.", "250")

	waitEvent(t, events, result, "sessions 0, unconsumed 1, mxd confirms draining: yes")
	notDoneAfter(t, fleet, result, "while mx2's message is queued")
	// Fetched is not consumed: until the consumer acknowledges, the
	// message may still be lost with it and delivered through nobody else.
	d := consume(t, e, host)
	notDoneAfter(t, fleet, result, "while mx2's message is fetched but not acknowledged")
	if err := d.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}

// consume takes host's message off the queue as listd does: a consumer
// fetches it and acknowledges it, which also drops it from host's
// accounting in the same script.
func consume(t *testing.T, e *env, host string) *queue.Delivery {
	t.Helper()
	copt := queue.DefaultConsumerOptions()
	copt.Group, copt.Block = "listd", 100*time.Millisecond
	c := e.q.Consumer(copt)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := c.Fetch(context.Background(), 10)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(ds) > 1 {
			t.Fatalf("fetched %d messages, want the one sent during the drain", len(ds))
		}
		if len(ds) == 1 {
			d := ds[0]
			if d.Err() != nil || d.Record.Host != host || !bodyContains(d, "Subject: during the drain") {
				t.Fatalf("fetched %s from %q (err %v), want the message sent to %s during the drain", d.ID, d.Record.Host, d.Err(), host)
			}
			return d
		}
		if time.Now().After(deadline) {
			t.Fatal("no message to consume")
		}
	}
}

// countingFleet counts the drain's reads of the hosts' state, so that a
// test can wait for one that began after a change it made.
type countingFleet struct {
	dnsctl.Fleet
	reads atomic.Int64
}

func (f *countingFleet) Hosts(ctx context.Context) ([]queue.HostStatus, error) {
	f.reads.Add(1)
	return f.Fleet.Hosts(ctx)
}

// notDoneAfter waits until the drain has read the hosts' state twice more
// (so a whole poll began after the caller's last change and did not find
// the host idle), then checks the drain is still running.
func notDoneAfter(t *testing.T, f *countingFleet, result <-chan error, what string) {
	t.Helper()
	n := f.reads.Load()
	waitFor(t, "two more polls of the drain", func() bool { return f.reads.Load() >= n+2 })
	select {
	case err := <-result:
		t.Fatalf("drain returned (%v) %s", err, what)
	default:
	}
}

// waitEvent waits for a progress event with msg; the drain must not end
// before.
func waitEvent(t *testing.T, events <-chan dnsctl.Event, result <-chan error, msg string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Msg == msg {
				return
			}
		case err := <-result:
			t.Fatalf("drain ended (%v) before %q", err, msg)
		case <-timeout:
			t.Fatalf("no event %q", msg)
		}
	}
}

// bodyContains reports whether the body of d has s.
func bodyContains(d *queue.Delivery, s string) bool {
	b, err := io.ReadAll(d.Body())
	return err == nil && strings.Contains(string(b), s)
}
