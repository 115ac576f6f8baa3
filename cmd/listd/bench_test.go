package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/lists"
	"mxq/queue"
	"mxq/queue/queuetest"
)

// BenchmarkSMTPToAck measures, through the real receiver, the delay from
// the 250 a client reads at the end of DATA to the consumer's
// acknowledgement after writing the message into a Maildir, at a steady
// offered rate of half the consumer's maximum (measured first on 3000
// messages). The receiver (smtpd, as mxd runs it) and the consumer (lists,
// as listd runs it with its default concurrency of 128, or -concurrency N)
// share one Redis with appendfsync always. One time-based measurement
// whatever b.N.
//
//	go test -run '^$' -bench SMTPToAck -benchtime 1x ./cmd/listd/ [-args -concurrency 128]
func BenchmarkSMTPToAck(b *testing.B) {
	r := queuetest.StartRedis(b)
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	mx := startMX(b, q, quiet)

	var mu sync.Mutex
	acked := map[string]time.Time{}
	router := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Maildir{Dir: b.TempDir()}}}}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	c := lists.NewConsumer(q.Consumer(queue.DefaultConsumerOptions()), router)
	c.Concurrency, c.Logger = *benchConcurrency, quiet
	c.Observe = func(res lists.Result) {
		now := time.Now()
		mu.Lock()
		acked[res.ID] = now
		mu.Unlock()
	}
	ackCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	// The consumer's maximum: 3000 messages queued, then emptied.
	const warm = 3000
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 4<<10/80)
	for i := range warm {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.test", From: "a@example.com", Arrived: time.Now(),
			Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}}}
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte(fmt.Sprintf("Message-ID: <w%d@x>\r\n\r\n%s", i, body))}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	go func() { c.Run(cctx); close(done) }()
	defer func() { stop(); <-done }()
	for ackCount() < warm {
		time.Sleep(time.Millisecond) // polling interval
	}
	maxRate := float64(warm) / time.Since(start).Seconds()

	// Half of it over SMTP, paced, from 8 sessions.
	rate := maxRate / 2
	total := int(rate * 5)
	var next atomic.Int64
	var wg sync.WaitGroup
	sent := map[string]time.Time{}
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.Dial(mx)
			if err != nil {
				b.Error(err)
				return
			}
			defer cl.Close()
			if err := cl.Hello("client.test"); err != nil {
				b.Error(err)
				return
			}
			for i := int(next.Add(1)) - 1; i < total; i = int(next.Add(1)) - 1 {
				time.Sleep(time.Until(t0.Add(time.Duration(float64(i) / rate * float64(time.Second))))) // pacing
				id, err := sendOne(cl, i, body)
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				mu.Lock()
				sent[id] = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	offered := float64(total) / time.Since(t0).Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for ackCount() < warm+total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling interval
	}
	mu.Lock()
	var delays []time.Duration
	for id, t := range sent {
		if a, ok := acked[id]; ok {
			delays = append(delays, max(a.Sub(t), 0))
		}
	}
	mu.Unlock()
	if len(delays) < total {
		b.Fatalf("%d of %d acknowledged", len(delays), total)
	}
	slices.Sort(delays)
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(maxRate, "consumer-max-msgs/s")
	b.ReportMetric(offered, "offered-msgs/s")
	b.ReportMetric(msf(delays[len(delays)/2]), "p50-ms")
	b.ReportMetric(msf(delays[len(delays)*99/100]), "p99-ms")
	b.ReportMetric(msf(delays[len(delays)-1]), "max-ms")
}

// benchConcurrency is the consumer's concurrency in BenchmarkSMTPToAck.
var benchConcurrency = flag.Int("concurrency", lists.DefaultConcurrency, "the consumer's concurrency in BenchmarkSMTPToAck (the default is listd's)")

// sendOne sends message i in the session and returns the queue id of the
// 250 reply.
func sendOne(cl *smtp.Client, i int, body string) (string, error) {
	if err := cl.Mail("alice@example.com", nil); err != nil {
		return "", err
	}
	if err := cl.Rcpt("dev@lists.example.org", nil); err != nil {
		return "", err
	}
	w, err := cl.Data()
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: e2e %d\r\nMessage-ID: <e2e.%d.%d@example.com>\r\n\r\n%s", i, i, time.Now().UnixNano(), body)
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	res, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	f := strings.Fields(res.StatusText)
	if len(f) == 0 {
		return "", fmt.Errorf("250 without a queue id: %q", res.StatusText)
	}
	return f[len(f)-1], nil
}
