package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mxq/queue"
)

// Acknowledgements made at once go to Redis together, yet each gets its
// own answer: one whose entry is no longer ours fails alone. Redis has
// also forgotten the script (a restart, SCRIPT FLUSH): the batch loads it
// again.
func TestConcurrentAcks(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	const n = 60
	for range n {
		e.put(t, "mx1", "a@lists.example.org")
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block = 50 * time.Millisecond
	c := e.q.Consumer(copt)
	var ds []*queue.Delivery
	for len(ds) < n {
		more, err := c.Fetch(ctx, n-len(ds))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, more...)
	}
	// Every fifth one is acknowledged already: a second ack is refused.
	for i := 0; i < n; i += 5 {
		if err := ds[i].Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = d.Ack(ctx) }()
	}
	wg.Wait()
	for i, err := range errs {
		if i%5 == 0 {
			if !errors.Is(err, queue.ErrLeaseLost) {
				t.Errorf("second ack of %s = %v, want ErrLeaseLost", ds[i].ID, err)
			}
		} else if err != nil {
			t.Errorf("ack of %s: %v", ds[i].ID, err)
		}
	}
	if ks := e.keys(t); len(ks) != 0 {
		t.Errorf("keys left after the acks: %v", ks)
	}
	if n, _ := e.q.Inflight(ctx, "mx1"); n != 0 {
		t.Errorf("inflight of mx1 = %d after the acks, want 0", n)
	}
}
