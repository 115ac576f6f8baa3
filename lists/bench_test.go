package lists_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

// benchSize is the message size: by default 4 KiB, a typical list post;
// -size 10240 matches the SMTP load bench.
var benchSize = flag.Int("size", 4<<10, "message body size in bytes in the consumer benchmarks")

// benchBody returns a body of benchSize bytes (rounded down to whole
// 80-byte lines).
func benchBody() []byte {
	return []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", *benchSize/80))
}

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
	data := append([]byte(fmt.Sprintf("Message-ID: <%d.%s@example.com>\r\nSubject: bench\r\n\r\n", i, rec.ID)), benchBody()...)
	if _, err := q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: data}); err != nil {
		tb.Error(err)
	}
	return rec.ID
}

// benchConsumer runs a consumer with h until the returned stop is called.
func benchConsumer(q *queue.Queue, h lists.Handler, observe func(lists.Result)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	copt := queue.DefaultConsumerOptions()
	copt.Block = 100 * time.Millisecond
	c := lists.NewConsumer(q.Consumer(copt), h)
	c.Concurrency, c.Logger, c.Observe = *benchConcurrency, discardLogger, observe
	go func() { c.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// BenchmarkConsume measures consumer throughput: b.N messages are queued
// first (not timed), then one consumer with 8 deliveries at a time (see
// benchConcurrency) empties the queue. msgs/s is the figure; cpu-ms/msg
// is this process's CPU time (user and system: the consumer, and the
// kernel's work for the files) per message; enqueue-msgs/s is the rate 8
// parallel producers put them in, for comparison. The maildir
// sub-benchmark also measures its reference (see benchMaildir).
//
// The Maildirs are removed only at the end: ext4 without a journal skips
// inodes freed in the last minute or so when it allocates new ones, at a
// CPU cost that grows with their number, so a writer that ran right
// after another's 2,000 deletions would be measured at a disadvantage.
//
//	go test -run '^$' -bench Consume -benchtime 2000x ./lists/
func BenchmarkConsume(b *testing.B) {
	root := b.TempDir()
	dirs := 0
	maildir := func() string {
		dirs++
		return filepath.Join(root, fmt.Sprint(dirs))
	}
	b.Run("maildir", func(b *testing.B) {
		r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Maildir{Dir: maildir()}}}}
		benchMaildir(b, r, maildir())
	})
	// The queue alone: the same consumer with a handler that delivers
	// nothing; what fetching and acknowledging cost.
	b.Run("queue-only", func(b *testing.B) {
		nothing := lists.HandlerFunc(func(context.Context, *lists.Message) error { return nil })
		benchConsume(b, nothing, func(int) string { return "dev@lists.example.org" })
	})
	b.Run("dovecot-lmtp", func(b *testing.B) {
		users := []string{"l0@lists.example.org", "l1@lists.example.org", "l2@lists.example.org", "l3@lists.example.org"}
		dv := liststest.StartDovecot(b, users...)
		r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: lists.Limit(&lists.LMTP{Addr: dv.Socket()}, 8)}}}
		benchConsume(b, r, func(i int) string { return users[i%len(users)] })
	})
}

// benchMaildir measures the consumer with h (a Router into a Maildir)
// against the reference: what the disk allows a plain Maildir writer with
// no queue, from as many goroutines as the consumer has deliveries, each
// copy on its own as any Maildir writer does it (tmp/NAME, fsync, rename
// into new/, fsync new/), into refDir. The two alternate in four rounds of
// b.N/4 messages, so that the disk's and the file system's moods (the
// machine is shared; see BenchmarkConsume on freed inodes) fall on both
// alike. It reports both rates, their ratio (x-reference) and the CPU
// time per message of each.
func benchMaildir(b *testing.B, h lists.Handler, refDir string) {
	e := newEnv(b)
	for _, sub := range []string{"tmp", "new"} {
		if err := os.MkdirAll(filepath.Join(refDir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	newDir, err := os.Open(filepath.Join(refDir, "new"))
	if err != nil {
		b.Fatal(err)
	}
	defer newDir.Close()
	const rounds = 4
	var took, cpu [2]time.Duration // consumer, reference
	done := 0
	b.ResetTimer()
	for round := range rounds {
		n := b.N / rounds
		if round == rounds-1 {
			n = b.N - done
		}
		b.StopTimer()
		fill(b, e.q, n, func(int) string { return "dev@lists.example.org" })
		b.StartTimer()
		for k := range 2 {
			which := (k + round) % 2
			if which == 0 {
				t, c := consumeN(b, e.q, h, n)
				took[0] += t
				cpu[0] += c
				continue
			}
			cpu0, start := cpuTime(), time.Now()
			writeReference(b, refDir, newDir, done, n)
			took[1] += time.Since(start)
			cpu[1] += cpuTime() - cpu0
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/took[0].Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/took[1].Seconds(), "reference-msgs/s")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "x-reference")
	b.ReportMetric(ms(cpu[0])/float64(b.N), "cpu-ms/msg")
	b.ReportMetric(ms(cpu[1])/float64(b.N), "reference-cpu-ms/msg")
}

// consumeN runs a consumer with h until it has delivered n messages, and
// returns the time and CPU time that took (its stop not included).
func consumeN(b *testing.B, q *queue.Queue, h lists.Handler, n int) (took, cpu time.Duration) {
	cpu0, start := cpuTime(), time.Now()
	var delivered atomic.Int64
	stop := benchConsumer(q, h, func(r lists.Result) {
		if r.Outcome == lists.Delivered {
			delivered.Add(1)
		} else {
			b.Errorf("%s: %s: %v", r.ID, r.Outcome, r.Err)
		}
	})
	for delivered.Load() < int64(n) && !b.Failed() {
		time.Sleep(time.Millisecond) // polling interval
	}
	took, cpu = time.Since(start), cpuTime()-cpu0
	b.StopTimer() // the consumer's stop waits out a blocked fetch
	stop()
	b.StartTimer()
	return took, cpu
}

// writeReference writes files first+1 … first+n into dir from
// benchConcurrency goroutines, as writeSynced does.
func writeReference(b *testing.B, dir string, newDir *os.File, first, n int) {
	body := benchBody()
	next := atomic.Int64{}
	next.Store(int64(first))
	var wg sync.WaitGroup
	for range *benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(first+n); i = next.Add(1) {
				if err := writeSynced(dir, newDir, fmt.Sprint(i), body); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchConsume(b *testing.B, h lists.Handler, rcpt func(int) string) {
	e := newEnv(b)
	in := fill(b, e.q, b.N, rcpt)
	var delivered atomic.Int64
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
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
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(ms(cpu)/float64(b.N), "cpu-ms/msg")
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

// benchConcurrency is the consumer's Concurrency in the benchmarks, and
// the writers of the reference: listd's default, 8, unless -concurrency
// says otherwise (go test -bench … ./lists/ -args -concurrency 32).
var benchConcurrency = flag.Int("concurrency", lists.DefaultConcurrency, "deliveries at once in the consumer benchmarks (the default is listd's)")

// writeSynced writes one copy the way a plain Maildir writer does: in
// tmp/, fsynced, renamed into new/, new/ fsynced (newDir is the open
// new/).
func writeSynced(dir string, newDir *os.File, name string, body []byte) error {
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, werr := f.Write(body)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return err
	}
	return newDir.Sync()
}

var discardLogger = slog.New(slog.DiscardHandler)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkBigMessage delivers b.N messages of 32 MiB, queued first (not
// timed), all at once (b.N ≤ the consumer's concurrency), into each kind
// of destination, and reports the rate (MiB/s), the bytes allocated per
// MiB delivered (alloc-B/MiB: what the garbage collector has to deal
// with) and how much the live heap grew at most (peak-heap-MiB: what the
// deliveries held at once).
//
//	go test -run '^$' -bench BigMessage -benchtime 8x ./lists/
func BenchmarkBigMessage(b *testing.B) {
	const rcpt = "dev@lists.example.org"
	b.Run("maildir", func(b *testing.B) {
		benchBig(b, &lists.Maildir{Dir: b.TempDir()})
	})
	b.Run("exec", func(b *testing.B) {
		benchBig(b, &lists.Exec{Argv: []string{"/bin/sh", "-c", "exec cat > /dev/null"}})
	})
	b.Run("smtp-sink", func(b *testing.B) {
		benchBig(b, &lists.SMTP{Addr: liststest.StartSink(b).Addr})
	})
	b.Run("dovecot-lmtp", func(b *testing.B) {
		benchBig(b, &lists.LMTP{Addr: liststest.StartDovecot(b, rcpt).Socket()})
	})
}

func benchBig(b *testing.B, to lists.Destination) {
	e := newEnv(b)
	for i := range b.N {
		e.putBig(b, bigData(fmt.Sprint(i), bigSize, uint64(i)), "dev@lists.example.org")
	}
	h := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: to}}}
	runtime.GC()
	base := liveHeap()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := startHeapPeak()
	b.ResetTimer()
	elapsed, _ := consumeN(b, e.q, h, b.N)
	b.StopTimer()
	top := peak.Stop()
	runtime.ReadMemStats(&after)
	total := float64(b.N) * bigSize / (1 << 20)
	b.ReportMetric(total/elapsed.Seconds(), "MiB/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "alloc-B/MiB")
	b.ReportMetric(mib(top-min(top, base)), "peak-heap-MiB")
}
