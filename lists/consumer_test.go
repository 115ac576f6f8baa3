package lists_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/lists"
	"mxq/queue"
)

// Redis is killed and restarted while messages are produced and consumed:
// every message that was queued (Enqueue returned nil) is delivered.
func TestRedisRestartWhileConsuming(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	md := &lists.Maildir{Dir: dir}
	var mu sync.Mutex
	copies := map[string]int{}
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		for _, rc := range m.Pending() {
			if err := md.Deliver(ctx, m, rc.Addr); err != nil {
				return err
			}
		}
		mu.Lock()
		copies[m.Record.ID]++
		mu.Unlock()
		return nil
	})
	e.run(t, fastRetries, h)

	var queued []string
	put := func(i int) {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "a@example.com", Arrived: time.Now(),
			Rcpts: []queue.Recipient{{Addr: "l@lists.example.org"}}}
		_, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: []byte("Subject: " + rec.ID + "\r\n\r\nx\r\n")})
		if err == nil {
			queued = append(queued, rec.ID)
		}
	}
	for i := range 30 {
		put(i)
	}
	e.r.Kill()
	for i := range 5 {
		put(i) // refused while Redis is down: a 4xx for the sender
	}
	e.r.Restart()
	for i := range 30 {
		put(i)
	}
	waitFor(t, "every queued message delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range queued {
			if copies[id] == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "queue drained", e.drained(t))
	files := maildirFiles(t, dir)
	for _, id := range queued {
		n := 0
		for _, f := range files {
			if strings.Contains(filepath.Base(f), "Q"+id+"R") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d files", id, n)
		}
	}
	if len(queued) < 60 {
		t.Errorf("only %d messages queued", len(queued))
	}
	mu.Lock()
	for id, n := range copies {
		if n > 1 {
			t.Logf("%s delivered %d times (allowed: at least once, and the Maildir kept one copy)", id, n)
		}
	}
	mu.Unlock()
}

// A stop lets a delivery in flight finish within the grace period; one
// that takes longer is interrupted and released, and another consumer
// takes it at once (without waiting out the lease).
func TestGracefulStop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	started := make(chan string, 2)
	release := make(chan struct{})
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		started <- m.Record.ID
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	opt := fastRetries
	opt.Lease = time.Hour // a released message must not wait for this
	runOnce := func(grace time.Duration) (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		c := lists.NewConsumer(e.q.Consumer(opt), h)
		c.Grace, c.Logger = grace, testLogger(t)
		go func() { c.Run(rctx); close(done) }()
		return func() { cancel(); <-done }
	}

	// Finishes within the grace period: acknowledged.
	stop := runOnce(10 * time.Second)
	id := e.put(t, "a@example.com", "l@lists.example.org")
	if got := <-started; got != id {
		t.Fatalf("started %s, want %s", got, id)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	release <- struct{}{}
	<-stopped
	if b, _ := e.q.Backlog(ctx); b.Depth() != 0 {
		t.Fatalf("after a graceful stop: %+v, want the message acknowledged", b)
	}

	// Does not finish within the grace period: released.
	stop = runOnce(50 * time.Millisecond)
	id = e.put(t, "a@example.com", "l@lists.example.org")
	<-started
	stop()
	stop = runOnce(10 * time.Second)
	defer stop()
	select {
	case got := <-started:
		if got != id {
			t.Fatalf("second consumer started %s, want %s", got, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("released message not taken over")
	}
	release <- struct{}{}
	waitFor(t, "delivery", e.drained(t))
	if _, err := e.q.DeadLetter(ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("dead letter: %v", err)
	}
}

// The last recipient's success is recorded by the acknowledgement; when
// the attempt ends otherwise, it is recorded before the retry, so the
// retry does not deliver to it again.
func TestLastRecipientRecordedOnRetry(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		calls.Add(1)
		for _, rc := range m.Pending() {
			if err := m.Delivered(ctx, rc.Addr); err != nil {
				return err
			}
		}
		return errors.New("a failure after every recipient had the message")
	})
	e.run(t, fastRetries, h)
	e.put(t, "a@example.com", "a@lists.example.org", "b@lists.example.org")
	waitFor(t, "the retry to acknowledge", e.drained(t))
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1: the retry found nothing pending", n)
	}
}

// An entry in a record format newer than the consumer reads is left in
// the queue, not dead-lettered, and the handler never sees it; the
// messages around it are delivered.
func TestTooNewIsLeft(t *testing.T) {
	e := newEnv(t)
	rdb := redis.NewClient(&redis.Options{Addr: e.r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	before := e.put(t, "a@example.com", "l@lists.example.org")
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream",
		Values: []any{"v", "3", "id", "future", "rec", `{"id":"future","host":"mx9"}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	after := e.put(t, "a@example.com", "l@lists.example.org")
	var mu sync.Mutex
	handled := map[string]bool{}
	var outcomes []lists.Result
	opt := fastRetries
	opt.ReclaimInterval = 50 * time.Millisecond
	c := lists.NewConsumer(e.q.Consumer(opt), lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		mu.Lock()
		handled[m.Record.ID] = true
		mu.Unlock()
		return nil
	}))
	c.Concurrency, c.Logger = 2, testLogger(t)
	c.Observe = func(r lists.Result) {
		mu.Lock()
		outcomes = append(outcomes, r)
		mu.Unlock()
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the other messages delivered and the new one left twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		left := 0
		for _, r := range outcomes {
			if r.Outcome == lists.Left && r.ID == "future" {
				left++
			}
		}
		return handled[before] && handled[after] && left >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	for _, r := range outcomes {
		if r.Outcome == lists.Dead || r.Outcome == lists.Unsettled || r.ID == "future" && r.Outcome != lists.Left {
			t.Errorf("outcome %v for %s (%v)", r.Outcome, r.ID, r.Err)
		}
	}
	if handled["future"] {
		t.Error("the handler got the entry in a newer format")
	}
	st, err := e.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 0 || len(st.Left) != 1 || st.Left[0].ID != "future" {
		t.Errorf("stats: dead %d, left %+v", st.Dead, st.Left)
	}
}
