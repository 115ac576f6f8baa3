package lists_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/lists"
)

// A failover lost an acknowledgement: the entry is back in the stream,
// with its body, as the promoted replica had them (put back by hand
// here). The consumer that acknowledged it knows its queue id: it
// acknowledges it again, with the outcome redelivered, and the handler
// does not get it a second time.
func TestRedeliveredAfterLostAck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	id := e.put(t, "alice@example.com", "a@lists.example.org", "b@lists.example.org")
	entries, err := rdb.XRange(ctx, "{mxq}:stream", "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream: %v, %v", entries, err)
	}
	body, err := rdb.Dump(ctx, "{mxq}:body:"+id).Result()
	if err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		calls.Add(1)
		for _, rc := range m.Pending() {
			if err := m.Delivered(ctx, rc.Addr); err != nil {
				return err
			}
		}
		return nil
	})
	outcomes := make(chan lists.Outcome, 10)
	c := lists.NewConsumer(e.q.Consumer(fastRetries), h)
	c.Logger, c.Observe = testLogger(t), func(r lists.Result) { outcomes <- r.Outcome }
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	next := func() lists.Outcome {
		t.Helper()
		select {
		case o := <-outcomes:
			return o
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery within 20s")
			return 0
		}
	}
	if o := next(); o != lists.Delivered {
		t.Fatalf("first outcome %v, want delivered", o)
	}

	if err := rdb.Restore(ctx, "{mxq}:body:"+id, 0, body).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, "{mxq}:inflight:mx1.example.org", id).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream", Values: entries[0].Values}).Err(); err != nil {
		t.Fatal(err)
	}
	if o := next(); o != lists.Redelivered {
		t.Errorf("outcome after the entry came back: %v, want redelivered", o)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	waitFor(t, "the queue to drain", e.drained(t))
	if ks, _ := rdb.Keys(ctx, "{mxq}:*"+id).Result(); len(ks) > 0 {
		t.Errorf("keys left: %v", ks)
	}
	if n, _ := rdb.SCard(ctx, "{mxq}:inflight:mx1.example.org").Result(); n != 0 {
		t.Errorf("inflight of mx1 = %d, want 0", n)
	}
}
