package maintenance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/maintenance"
	"mxq/queue/queuetest"
	"mxq/redisha"
)

// newStore returns the Store of the queue named name on r, on a
// connection opened as the queue opens its own.
func newStore(t *testing.T, r *queuetest.Redis, name string) *maintenance.Store {
	t.Helper()
	c, err := redisha.Open(r.URL(), redisha.Config{Name: "mxq", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return maintenance.New(c, name)
}

func TestLease(t *testing.T) {
	r := queuetest.StartRedis(t)
	st := newStore(t, r, "lease")
	ctx := context.Background()
	const ttl = time.Minute

	if l, err := st.Current(ctx); err != nil || l.Owner != "" {
		t.Fatalf("Current before = %+v, %v; want free", l, err)
	}
	if err := st.Acquire(ctx, "a", ttl); err != nil {
		t.Fatal(err)
	}
	if err := st.Acquire(ctx, "a", ttl); err != nil {
		t.Errorf("acquire again by the holder: %v", err)
	}
	var held *maintenance.LeaseHeldError
	if err := st.Acquire(ctx, "b", ttl); !errors.As(err, &held) || held.Owner != "a" {
		t.Fatalf("acquire by b: got %v, want *LeaseHeldError by a", err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"renew by holder", func() error { return st.Renew(ctx, "a", ttl) }, nil},
		{"renew by other", func() error { return st.Renew(ctx, "b", ttl) }, maintenance.ErrLost},
		{"save by holder", func() error { return st.Save(ctx, "a", []byte(`{"phase":1}`)) }, nil},
		{"save by other", func() error { return st.Save(ctx, "b", []byte(`{"phase":2}`)) }, maintenance.ErrLost},
		{"release by other", func() error { return st.Release(ctx, "b") }, nil},
		{"clear by other", func() error { return st.Clear(ctx, "b") }, maintenance.ErrLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if b, err := st.Load(ctx); err != nil || string(b) != `{"phase":1}` {
		t.Fatalf("Load = %q, %v; want the holder's state", b, err)
	}
	if l, _ := st.Current(ctx); l.Owner != "a" || time.Until(l.Expires) <= 0 {
		t.Errorf("Current = %+v, want held by a", l)
	}

	// The state outlives the lease: a killed dnsctl's lease expires, the
	// next run takes the lease and finds the state.
	if err := st.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Acquire(ctx, "b", ttl); err != nil {
		t.Fatalf("acquire a released lease: %v", err)
	}
	if b, _ := st.Load(ctx); string(b) != `{"phase":1}` {
		t.Errorf("state after a new lease = %q", b)
	}
	if err := st.Clear(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if b, err := st.Load(ctx); b != nil || err != nil {
		t.Errorf("after clear: %q, %v; want nothing", b, err)
	}
	if l, _ := st.Current(ctx); l.Owner != "" {
		t.Errorf("after clear the lease is %+v, want free", l)
	}

	// Every key shares the queue's hash tag.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	st.Acquire(ctx, "c", ttl)
	st.Save(ctx, "c", []byte("{}"))
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

func TestLeaseExpires(t *testing.T) {
	r := queuetest.StartRedis(t)
	st := newStore(t, r, "mxq")
	ctx := context.Background()
	if err := st.Acquire(ctx, "a", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := st.Acquire(ctx, "b", time.Minute)
		if err == nil {
			break
		}
		var held *maintenance.LeaseHeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			t.Fatalf("lease of a did not expire: %v", err)
		}
		<-time.After(10 * time.Millisecond) // poll interval
	}
	if err := st.Renew(ctx, "a", time.Minute); !errors.Is(err, maintenance.ErrLost) {
		t.Errorf("renew after expiry: got %v, want ErrLost", err)
	}
}

// A lease taken while Redis is past maxmemory fails with Redis's refusal
// (OOM), not as a lease held by another.
func TestLeaseOutOfMemory(t *testing.T) {
	r := queuetest.StartRedis(t)
	st := newStore(t, r, "mxq")
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "ballast", strings.Repeat("x", 4<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	err := st.Acquire(ctx, "dnsctl-1", time.Minute)
	var held *maintenance.LeaseHeldError
	if !redis.HasErrorPrefix(err, "OOM ") || errors.As(err, &held) {
		t.Errorf("Acquire past maxmemory = %v, want Redis's OOM refusal", err)
	}
}
