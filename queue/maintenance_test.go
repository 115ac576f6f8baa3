package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

func TestMaintenanceLease(t *testing.T) {
	r := queuetest.StartRedis(t)
	q, err := queue.Open(r.URL(), queue.Options{Name: "lease"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	const ttl = time.Minute

	if l, err := q.CurrentLease(ctx); err != nil || l.Owner != "" {
		t.Fatalf("CurrentLease before = %+v, %v; want free", l, err)
	}
	if err := q.AcquireLease(ctx, "a", ttl); err != nil {
		t.Fatal(err)
	}
	if err := q.AcquireLease(ctx, "a", ttl); err != nil {
		t.Errorf("acquire again by the holder: %v", err)
	}
	var held *queue.LeaseHeldError
	if err := q.AcquireLease(ctx, "b", ttl); !errors.As(err, &held) || held.Owner != "a" {
		t.Fatalf("acquire by b: got %v, want *LeaseHeldError by a", err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"renew by holder", func() error { return q.RenewLease(ctx, "a", ttl) }, nil},
		{"renew by other", func() error { return q.RenewLease(ctx, "b", ttl) }, queue.ErrMaintenanceLost},
		{"save by holder", func() error { return q.SaveMaintenance(ctx, "a", []byte(`{"phase":1}`)) }, nil},
		{"save by other", func() error { return q.SaveMaintenance(ctx, "b", []byte(`{"phase":2}`)) }, queue.ErrMaintenanceLost},
		{"release by other", func() error { return q.ReleaseLease(ctx, "b") }, nil},
		{"clear by other", func() error { return q.ClearMaintenance(ctx, "b") }, queue.ErrMaintenanceLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if b, err := q.LoadMaintenance(ctx); err != nil || string(b) != `{"phase":1}` {
		t.Fatalf("LoadMaintenance = %q, %v; want the holder's state", b, err)
	}
	if l, _ := q.CurrentLease(ctx); l.Owner != "a" || time.Until(l.Expires) <= 0 {
		t.Errorf("CurrentLease = %+v, want held by a", l)
	}

	// The state outlives the lease: a killed dnsctl's lease expires, the
	// next run takes the lease and finds the state.
	if err := q.ReleaseLease(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := q.AcquireLease(ctx, "b", ttl); err != nil {
		t.Fatalf("acquire a released lease: %v", err)
	}
	if b, _ := q.LoadMaintenance(ctx); string(b) != `{"phase":1}` {
		t.Errorf("state after a new lease = %q", b)
	}
	if err := q.ClearMaintenance(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if b, err := q.LoadMaintenance(ctx); b != nil || err != nil {
		t.Errorf("after clear: %q, %v; want nothing", b, err)
	}
	if l, _ := q.CurrentLease(ctx); l.Owner != "" {
		t.Errorf("after clear the lease is %+v, want free", l)
	}

	// Every key shares the queue's hash tag.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	q.AcquireLease(ctx, "c", ttl)
	q.SaveMaintenance(ctx, "c", []byte("{}"))
	keys, err := rdb.Keys(ctx, "*maint*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v; want lease and state", keys, err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{lease}:maint:") {
			t.Errorf("key %q lacks the hash tag {lease}", k)
		}
	}
}

func TestMaintenanceLeaseExpires(t *testing.T) {
	r := queuetest.StartRedis(t)
	q, err := queue.Open(r.URL(), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	if err := q.AcquireLease(ctx, "a", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := q.AcquireLease(ctx, "b", time.Minute)
		if err == nil {
			break
		}
		var held *queue.LeaseHeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			t.Fatalf("lease of a did not expire: %v", err)
		}
		<-time.After(10 * time.Millisecond) // poll interval
	}
	if err := q.RenewLease(ctx, "a", time.Minute); !errors.Is(err, queue.ErrMaintenanceLost) {
		t.Errorf("renew after expiry: got %v, want ErrMaintenanceLost", err)
	}
}
