package lists_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mxq/lists"
	"mxq/queue"
	"mxq/queue/queuetest"
)

// env is a real Redis with a queue, and a consumer running a Router.
type env struct {
	r *queuetest.Redis
	q *queue.Queue
}

func newEnv(t testing.TB) *env {
	t.Helper()
	r := queuetest.StartRedis(t)
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q, err := queue.Open(r.URL(), qopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &env{r: r, q: q}
}

// fastRetries are consumer options for tests: short waits everywhere.
var fastRetries = func() queue.ConsumerOptions {
	o := queue.DefaultConsumerOptions()
	o.Block, o.Lease = 20*time.Millisecond, 2*time.Second
	o.RetryMin, o.RetryMax, o.MaxAttempts = 20*time.Millisecond, 100*time.Millisecond, 50
	return o
}()

// run starts a consumer with handler h and stops it when the test ends.
func (e *env) run(t testing.TB, opt queue.ConsumerOptions, h lists.Handler) *queue.Consumer {
	t.Helper()
	src := e.q.Consumer(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c := lists.NewConsumer(src, h)
	c.Concurrency, c.Grace, c.Logger = 4, 5*time.Second, testLogger(t)
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return src
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// put enqueues a message from mx1 and returns its queue id.
func (e *env) put(t testing.TB, from string, rcpts ...string) string {
	t.Helper()
	id := queue.NewID(time.Now())
	data := "From: " + from + "\r\nTo: " + rcpts[0] + "\r\nSubject: test " + id + "\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello.\r\n"
	e.putData(t, id, from, data, rcpts...)
	return id
}

// putData enqueues data from mx1 under queue id id. The queue folds a
// message whose sender, recipients and data it has seen before into the
// first (queue.DedupHash): a test that wants the same bytes delivered
// again, as a redelivery would, adds a recipient.
func (e *env) putData(t testing.TB, id, from, data string, rcpts ...string) {
	t.Helper()
	rec := &queue.Record{ID: id, Host: "mx1.example.org", From: from, Arrived: time.Now()}
	for _, r := range rcpts {
		rec.Rcpts = append(rec.Rcpts, queue.Recipient{Addr: r})
	}
	res, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Header: []byte("Received: from test\r\n"), Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate {
		t.Fatalf("the queue took %s for a copy of a message it has", id)
	}
}

// waitFor polls cond until it holds, for at most 20s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitForSized(t, what, 0, cond)
}

// waitForSized is waitFor for work on n bytes: its deadline grows with
// them (at 1 MiB/s, far below what a loaded machine with -race does), so
// that a big delivery on a busy machine is slow, not failed.
func waitForSized(t testing.TB, what string, n int64, cond func() bool) {
	t.Helper()
	waitWithin(t, what, 20*time.Second+time.Duration(n>>20)*time.Second, cond)
}

// waitWithin polls cond until it holds, for at most d: for list software
// that takes its time (Mailman passes a post through several runners).
func waitWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// drained reports whether nothing is left to consume.
func (e *env) drained(t testing.TB) func() bool {
	return func() bool {
		b, err := e.q.Backlog(context.Background())
		return err == nil && b.Depth() == 0
	}
}

// maildirFiles returns the files in dir/new.
func maildirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, "new", e.Name()))
	}
	return out
}
