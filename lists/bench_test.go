package lists_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

// benchBody is a 4 KiB message, the size of a typical list post.
var benchBody = []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 4<<10/80))

// fill enqueues n messages for rcpts(i), from 8 producers at once (as
// several mxd sessions would), and returns how long that took.
func fill(tb testing.TB, q *queue.Queue, n int, rcpt func(i int) string) time.Duration {
	tb.Helper()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				benchPut(tb, q, rcpt(i), i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func benchPut(tb testing.TB, q *queue.Queue, rcpt string, i int) string {
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "alice@example.com",
		Arrived: time.Now(), Rcpts: []queue.Recipient{{Addr: rcpt}}}
	data := append([]byte(fmt.Sprintf("Message-ID: <%d.%s@example.com>\r\nSubject: bench\r\n\r\n", i, rec.ID)), benchBody...)
	if _, err := q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: data}); err != nil {
		tb.Error(err)
	}
	return rec.ID
}

// benchConsumer runs a consumer with h until the returned stop is called.
func benchConsumer(q *queue.Queue, h lists.Handler, observe func(lists.Result)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c := &lists.Consumer{
		Source:      q.Consumer(queue.ConsumerOptions{Block: 100 * time.Millisecond}),
		Handler:     h,
		Concurrency: benchConcurrency,
		Logger:      discardLogger,
		Observe:     observe,
	}
	go func() { c.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// BenchmarkConsume measures consumer throughput: b.N messages are queued
// first (not timed), then one consumer with 8 deliveries at a time empties
// the queue. msgs/s is the figure; enqueue-msgs/s is the rate 8 parallel
// producers put them in, for comparison.
//
//	go test -run '^$' -bench Consume -benchtime 2000x ./lists/
func BenchmarkConsume(b *testing.B) {
	b.Run("maildir", func(b *testing.B) {
		dir := b.TempDir()
		r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Maildir{Dir: dir}}}}
		benchConsume(b, r, func(int) string { return "dev@lists.example.org" })
	})
	// The reference: the same Maildir writes (tmp/, fsync, rename, fsync
	// new/) from 8 goroutines without any queue; what the disk allows.
	b.Run("maildir-reference", func(b *testing.B) {
		dir := b.TempDir()
		for _, sub := range []string{"tmp", "new"} {
			os.MkdirAll(filepath.Join(dir, sub), 0o700)
		}
		newDir, err := os.Open(filepath.Join(dir, "new"))
		if err != nil {
			b.Fatal(err)
		}
		defer newDir.Close()
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range benchConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if err := writeSynced(dir, newDir, fmt.Sprint(i), benchBody); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("dovecot-lmtp", func(b *testing.B) {
		users := []string{"l0@lists.example.org", "l1@lists.example.org", "l2@lists.example.org", "l3@lists.example.org"}
		dv := liststest.StartDovecot(b, users...)
		r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.LMTP{Addr: dv.Socket()}}}}
		benchConsume(b, r, func(i int) string { return users[i%len(users)] })
	})
}

func benchConsume(b *testing.B, h lists.Handler, rcpt func(int) string) {
	e := newEnv(b)
	in := fill(b, e.q, b.N, rcpt)
	var delivered atomic.Int64
	b.ResetTimer()
	start := time.Now()
	stop := benchConsumer(e.q, h, func(r lists.Result) {
		if r.Outcome == lists.Delivered {
			delivered.Add(1)
		} else {
			b.Errorf("%s: %s: %v", r.ID, r.Outcome, r.Err)
		}
	})
	for delivered.Load() < int64(b.N) && !b.Failed() {
		time.Sleep(time.Millisecond) // polling interval
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/in.Seconds(), "enqueue-msgs/s")
}

// BenchmarkEndToEnd measures the delay from the moment a producer's
// Enqueue returns (when mxd answers 250) to the consumer's acknowledgement,
// into a Maildir, at a steady offered rate of half the consumer's measured
// maximum. It first measures that maximum with 3000 messages, then offers
// half of it for 5 seconds, and reports p50 and p99 of the delay.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./lists/
func BenchmarkEndToEnd(b *testing.B) {
	// One time-based measurement whatever b.N: with the default
	// -benchtime the first round (b.N = 1) already takes longer than 1s.
	e := newEnv(b)
	h := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Maildir{Dir: b.TempDir()}}}}
	maxRate := maxConsumeRate(b, e, h, 3000)
	offered, delays := steadyDelays(b, e, h, maxRate/2, 5*time.Second)
	if len(delays) == 0 {
		return
	}
	b.ReportMetric(maxRate, "max-msgs/s")
	b.ReportMetric(offered, "offered-msgs/s")
	b.ReportMetric(ms(delays[len(delays)/2]), "p50-ms")
	b.ReportMetric(ms(delays[len(delays)*99/100]), "p99-ms")
	b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
}

// maxConsumeRate queues n messages, then measures how fast a consumer
// empties the queue.
func maxConsumeRate(b *testing.B, e *env, h lists.Handler, n int) float64 {
	fill(b, e.q, n, func(int) string { return "dev@lists.example.org" })
	var acked atomic.Int64
	start := time.Now()
	stop := benchConsumer(e.q, h, func(lists.Result) { acked.Add(1) })
	defer stop()
	for acked.Load() < int64(n) {
		time.Sleep(time.Millisecond) // polling interval
	}
	return float64(n) / time.Since(start).Seconds()
}

// steadyDelays offers rate messages per second for d, from 8 producers
// that each send message i at t0 + i/rate (so one slow enqueue does not
// delay the schedule), and returns the rate achieved and the sorted
// delays from each Enqueue's return to the message's acknowledgement.
func steadyDelays(b *testing.B, e *env, h lists.Handler, rate float64, d time.Duration) (float64, []time.Duration) {
	var mu sync.Mutex
	queued, ackAt := map[string]time.Time{}, map[string]time.Time{}
	stop := benchConsumer(e.q, h, func(r lists.Result) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if r.Outcome == lists.Delivered {
			ackAt[r.ID] = now
		}
	})
	defer stop()
	total := int(rate * d.Seconds())
	t0 := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < total; i = int(next.Add(1)) - 1 {
				time.Sleep(time.Until(t0.Add(time.Duration(float64(i) / rate * float64(time.Second))))) // pacing
				id := benchPut(b, e.q, "dev@lists.example.org", i)
				// The consumer may acknowledge before this line runs:
				// the delay then counts as zero.
				now := time.Now()
				mu.Lock()
				queued[id] = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	offered := float64(total) / time.Since(t0).Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(ackAt)
		mu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	mu.Lock()
	defer mu.Unlock()
	var delays []time.Duration
	for id, t := range queued {
		if a, ok := ackAt[id]; ok {
			delays = append(delays, max(a.Sub(t), 0))
		}
	}
	if len(delays) < total {
		b.Errorf("%d of %d acknowledged", len(delays), total)
	}
	slices.Sort(delays)
	return offered, delays
}

// benchConcurrency is the consumer's Concurrency in the benchmarks
// (listd's default concurrency is 8).
const benchConcurrency = 8

// writeSynced writes one file the way lists.Maildir does; newDir is the
// open new/ directory.
func writeSynced(dir string, newDir *os.File, name string, body []byte) error {
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	f.Write(body)
	f.Sync()
	f.Close()
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return err
	}
	return newDir.Sync()
}

var discardLogger = slog.New(slog.DiscardHandler)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
