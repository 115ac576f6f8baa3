package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// Health counts what is queued, pending, retrying and dead, dates the head
// of the stream, and shows each MX host alive or gone, draining or not.
func TestHealth(t *testing.T) {
	r := queuetest.StartRedis(t, queuetest.MaxMemory("64mb"))
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()

	h, err := q.Health(ctx)
	if err != nil {
		t.Fatalf("Health of an empty queue: %v", err)
	}
	if h.Depth != 0 || !h.Head.IsZero() || h.MaxMemory != 64<<20 || h.UsedMemory <= 0 || h.CPUSeconds <= 0 {
		t.Errorf("empty queue: %+v, want depth 0, no head, maxmemory 64 MiB, some CPU used", h)
	}

	arrived := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 4 {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "a@example.com", Arrived: arrived.Add(time.Duration(i) * time.Second),
			Rcpts: []queue.Recipient{{Addr: "l@lists.example.org"}}}
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))}); err != nil {
			t.Fatal(err)
		}
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.RetryMin, copt.RetryMax = 10*time.Millisecond, time.Hour, time.Hour
	c := q.Consumer(copt)
	ds, err := c.Fetch(ctx, 3)
	if err != nil || len(ds) != 3 {
		t.Fatalf("Fetch: %d, %v", len(ds), err)
	}
	if _, err := ds[0].Retry(ctx, fmt.Errorf("try later")); err != nil {
		t.Fatal(err)
	}
	if err := ds[1].Dead(ctx, "no such list"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Beat(ctx, queue.Heartbeat{Host: "mx1", Sessions: 7}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Beat(ctx, queue.Heartbeat{Host: "mx2"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.SetDraining(ctx, "mx2", true); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.SAdd(ctx, "{mxq}:hosts", "mx3").Err(); err != nil { // seen once, heartbeat gone
		t.Fatal(err)
	}

	h, err = q.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Of 4: one dead, one retrying, one pending, one unread.
	got := h
	got.UsedMemory, got.MaxMemory, got.CPUSeconds = 0, 0, 0
	want := queue.Health{Depth: 3, Pending: 1, Retrying: 1, Dead: 1, Head: arrived.Add(2 * time.Second),
		Hosts: []queue.HostHealth{
			{Host: "mx1", Alive: true, Sessions: 7, Inflight: 3},
			{Host: "mx2", Alive: true, Draining: true},
			{Host: "mx3"},
		}}
	opts := cmp.Options{cmpopts.IgnoreFields(queue.HostHealth{}, "Seen", "DrainSince"), cmpopts.EquateApproxTime(0)}
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("Health (-want +got):\n%s", d)
	}
	for _, hh := range h.Hosts {
		if hh.Alive != !hh.Seen.IsZero() {
			t.Errorf("%s: alive %v, seen %v", hh.Host, hh.Alive, hh.Seen)
		}
		if hh.Draining && time.Since(hh.DrainSince) > time.Minute {
			t.Errorf("%s: draining since %v, want just now", hh.Host, hh.DrainSince)
		}
	}
}
