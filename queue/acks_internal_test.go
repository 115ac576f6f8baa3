package queue

import (
	"context"
	"testing"
	"time"

	"mxq/queue/queuetest"
)

// Two acknowledgements gather behind a running batch; the context of one
// of them ends before their batch goes. Whichever of the two sends it,
// both reach Redis: the batch does not run under a sender's context.
func TestAckBatchOwnContext(t *testing.T) {
	q := openTest(t)
	ctx := context.Background()
	const rounds = 8
	for range 2 * rounds {
		rec := &Record{ID: NewID(time.Now()), Host: "mx1", From: "alice@example.com", Arrived: time.Now(), Rcpts: []Recipient{{Addr: "a@lists.example.org"}}}
		if _, err := q.Enqueue(ctx, &Message{Record: rec, Data: []byte("Subject: " + rec.ID + "\r\n\r\nbody\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	copt := DefaultConsumerOptions()
	copt.Block = 20 * time.Millisecond
	c := q.Consumer(copt)
	var ds []*Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(ds) < 2*rounds && time.Now().Before(deadline) {
		more, err := c.Fetch(ctx, 2*rounds-len(ds))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, more...)
	}
	if len(ds) != 2*rounds {
		t.Fatalf("fetched %d deliveries, want %d", len(ds), 2*rounds)
	}

	for i := 0; i < len(ds); i += 2 {
		running, release := make(chan struct{}), make(chan struct{})
		blocker := make(chan struct{})
		go func() {
			defer close(blocker)
			c.acks.Do(nil, func([]*ackReq) { close(running); <-release })
		}()
		<-running
		cancelled, cancel := context.WithCancel(ctx)
		errs := make(chan error, 2)
		go func() { errs <- ds[i].Ack(cancelled) }()
		go func() { errs <- ds[i+1].Ack(ctx) }()
		waitGathered(t, c, 2)
		cancel()
		close(release)
		<-blocker
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("round %d: ack in a batch with a cancelled sender: %v", i/2, err)
			}
		}
	}
}

// waitGathered polls until n acknowledgements wait for the next batch.
func waitGathered(t *testing.T, c *Consumer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.acks.mu.Lock()
		got := 0
		if c.acks.next != nil {
			got = len(c.acks.next.items)
		}
		c.acks.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledgements gathered, want %d", got, n)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}

// openTest opens a queue on a Redis of its own, closed when the test ends.
func openTest(t *testing.T) *Queue {
	t.Helper()
	r := queuetest.StartRedis(t)
	qopt := DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q, err := Open(r.URL(), qopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
