package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// consumeEnv is a real Redis, a queue on it and a raw client to look at
// the keys.
type consumeEnv struct {
	r   *queuetest.Redis
	q   *queue.Queue
	rdb *redis.Client
}

func newConsumeEnv(t *testing.T) *consumeEnv {
	t.Helper()
	r := queuetest.StartRedis(t)
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q, err := queue.Open(r.URL(), qopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return &consumeEnv{r: r, q: q, rdb: rdb}
}

// put enqueues a message from host for rcpts and returns its queue id.
func (e *consumeEnv) put(t *testing.T, host string, rcpts ...string) string {
	t.Helper()
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: host, From: "alice@example.com", Arrived: time.Now()}
	for _, r := range rcpts {
		rec.Rcpts = append(rec.Rcpts, queue.Recipient{Addr: r})
	}
	_, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: []byte("Subject: " + rec.ID + "\r\n\r\nbody\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return rec.ID
}

// fetchOne polls c until it returns a delivery, for at most 10s.
func fetchOne(t *testing.T, c *queue.Consumer) *queue.Delivery {
	t.Helper()
	return fetchN(t, c, 1)[0]
}

// fetchN polls c until it has n deliveries, for at most 10s.
func fetchN(t *testing.T, c *queue.Consumer, n int) []*queue.Delivery {
	t.Helper()
	var ds []*queue.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(ds) < n {
		more, err := c.Fetch(context.Background(), n-len(ds))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		ds = append(ds, more...)
		if len(ds) < n && time.Now().After(deadline) {
			t.Fatalf("%s fetched %d of %d within 10s", c.Name(), len(ds), n)
		}
	}
	return ds
}

// keys returns the keys of the queue that hold a message or its state:
// not hosts, the streams, dedup keys (those expire on their own) or the
// consumers' announcements.
func (e *consumeEnv) keys(t *testing.T) []string {
	t.Helper()
	ks, err := e.rdb.Keys(context.Background(), "{mxq}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		if k != "{mxq}:hosts" && k != "{mxq}:stream" && k != "{mxq}:dead" && !strings.HasPrefix(k, "{mxq}:dedup:") &&
			!strings.HasPrefix(k, "{mxq}:consumers:") {
			out = append(out, k)
		}
	}
	return out
}

func TestAckRemovesEverything(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	// Queued before any consumer exists: the group starts at the beginning.
	id := e.put(t, "mx1", "a@lists.example.org", "b@lists.example.org")
	copt := queue.DefaultConsumerOptions()
	copt.Block = 50 * time.Millisecond
	c := e.q.Consumer(copt)
	d := fetchOne(t, c)
	if d.ID != id || d.Attempt != 1 || d.Err() != nil || readAll(t, d.Body()) == "" {
		t.Fatalf("delivery = %+v (err %v), want %s, attempt 1, with body", d, d.Err(), id)
	}
	if err := d.Delivered(ctx, "a@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if ks := e.keys(t); len(ks) != 0 {
		t.Errorf("keys left after ack: %v", ks)
	}
	if n, _ := e.rdb.XLen(ctx, "{mxq}:stream").Result(); n != 0 {
		t.Errorf("stream length %d after ack, want 0", n)
	}
	if n, _ := e.q.Inflight(ctx, "mx1"); n != 0 {
		t.Errorf("inflight of mx1 = %d after ack, want 0", n)
	}
	st, err := e.q.Stats(ctx)
	if err != nil || st.Pending != 0 {
		t.Errorf("stats = %+v, %v; want nothing pending", st, err)
	}
	// A second ack is refused: the entry is no longer ours.
	if err := d.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("second Ack = %v, want ErrLeaseLost", err)
	}
}

func TestRetryBacksOffThenDelivers(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.RetryMin, copt.RetryMax, copt.Now = 10*time.Millisecond, time.Minute, 3*time.Minute, clock
	c := e.q.Consumer(copt)
	id := e.put(t, "mx1", "a@lists.example.org", "b@lists.example.org")

	d := fetchOne(t, c)
	if err := d.Delivered(ctx, "a@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if dead, err := d.Retry(ctx, errors.New("451 4.3.0 try later")); err != nil || dead {
		t.Fatalf("Retry = %v, %v", dead, err)
	}
	sched, err := e.q.Scheduled(ctx, 10)
	if err != nil || len(sched) != 1 || sched[0].Record.ID != id || sched[0].Attempts != 1 {
		t.Fatalf("Scheduled = %+v, %v", sched, err)
	}
	if wait := sched[0].Due.Sub(clock()); wait < 54*time.Second || wait > 66*time.Second {
		t.Errorf("first retry due in %v, want 1m ± 10%%", wait)
	}
	if b, err := e.q.Backlog(ctx); err != nil || b.Depth() != 1 || b.Scheduled != 1 {
		t.Errorf("backlog = %+v, %v; want one scheduled", b, err)
	}
	// Not due yet: nothing to fetch, however often we ask.
	for range 3 {
		if ds, err := c.Fetch(ctx, 1); err != nil || len(ds) != 0 {
			t.Fatalf("Fetch before due = %v, %v", ds, err)
		}
	}
	advance(70 * time.Second)
	d = fetchOne(t, c)
	if d.ID != id || d.Attempt != 2 || len(d.Attempts) != 1 || d.Attempts[0].Error != "451 4.3.0 try later" {
		t.Fatalf("second delivery = %+v", d)
	}
	if diff := cmp.Diff([]queue.Recipient{{Addr: "b@lists.example.org"}}, d.Pending()); diff != "" {
		t.Errorf("pending after a's success (-want +got):\n%s", diff)
	}
	if _, err := d.Retry(ctx, errors.New("again")); err != nil {
		t.Fatal(err)
	}
	sched, _ = e.q.Scheduled(ctx, 10)
	if wait := sched[0].Due.Sub(clock()); wait < 108*time.Second || wait > 132*time.Second {
		t.Errorf("second retry due in %v, want 2m ± 10%%", wait)
	}
	advance(3 * time.Minute)
	d = fetchOne(t, c)
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if ks := e.keys(t); len(ks) != 0 {
		t.Errorf("keys left after ack: %v", ks)
	}
}

func TestDeadLetter(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.MaxAttempts, copt.RetryMin, copt.RetryMax = 10*time.Millisecond, 2, time.Millisecond, time.Millisecond
	c := e.q.Consumer(copt)
	id := e.put(t, "mx2", "a@lists.example.org", "b@lists.example.org")

	d := fetchOne(t, c)
	if dead, err := d.Retry(ctx, errors.New("first failure")); err != nil || dead {
		t.Fatalf("Retry 1 = %v, %v", dead, err)
	}
	d = fetchOne(t, c)
	if err := d.Delivered(ctx, "a@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reject(ctx, "b@lists.example.org", errors.New("550 5.1.1 no such list")); err != nil {
		t.Fatal(err)
	}
	if dead, err := d.Retry(ctx, errors.New("second failure")); err != nil || !dead {
		t.Fatalf("Retry 2 = %v, %v; want dead", dead, err)
	}
	if n, _ := e.q.Inflight(ctx, "mx2"); n != 0 {
		t.Errorf("inflight of mx2 = %d after dead-lettering, want 0 (the MX's part is done)", n)
	}
	dl, err := e.q.DeadLetter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, a := range dl.Attempts {
		errs = append(errs, fmt.Sprintf("%d:%s", a.N, a.Error))
	}
	if diff := cmp.Diff([]string{"1:first failure", "2:second failure"}, errs); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	if dl.Record == nil || dl.Record.Host != "mx2" || dl.Reason == "" {
		t.Errorf("dead letter = %+v", dl)
	}
	if diff := cmp.Diff([]string{"a@lists.example.org"}, dl.Delivered); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if dl.Rejected["b@lists.example.org"] != "550 5.1.1 no such list" {
		t.Errorf("rejected = %v", dl.Rejected)
	}
	if r, err := e.q.DeadBody(ctx, id); err != nil || readAll(t, r) == "" {
		t.Errorf("DeadBody = %v, %v; the body stays for a retry", r, err)
	}

	// Retry: only b is pending again, attempts start over.
	if err := e.q.RetryDead(ctx, id); err != nil {
		t.Fatal(err)
	}
	d = fetchOne(t, c)
	if d.ID != id || d.Attempt != 1 {
		t.Fatalf("after RetryDead: %+v", d)
	}
	if diff := cmp.Diff([]queue.Recipient{{Addr: "b@lists.example.org"}}, d.Pending()); diff != "" {
		t.Errorf("pending after dead retry (-want +got):\n%s", diff)
	}
	if err := d.Dead(ctx, "permanent: 550 again"); err != nil {
		t.Fatal(err)
	}
	if err := e.q.PurgeDead(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ks := e.keys(t); len(ks) != 0 {
		t.Errorf("keys left after purge: %v", ks)
	}
	if err := e.q.PurgeDead(ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("second purge = %v, want ErrNotFound", err)
	}
}

// leasePair returns consumers "a" and "b" of q that hold entries for
// lease; b looks for expired leases every millisecond.
func leasePair(q *queue.Queue, lease time.Duration) (a, b *queue.Consumer) {
	o := queue.DefaultConsumerOptions()
	o.Name, o.Lease, o.Block = "a", lease, 10*time.Millisecond
	a = q.Consumer(o)
	o.Name, o.ReclaimInterval = "b", time.Millisecond
	return a, q.Consumer(o)
}

func TestLeaseExpiryAndRenewal(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	const lease = 300 * time.Millisecond
	a, b := leasePair(e.q, lease)
	id := e.put(t, "mx1", "x@lists.example.org")

	held := fetchOne(t, a)
	hctx, stop := held.Hold(ctx)
	// While a holds the lease, b gets nothing for several leases' time.
	until := time.Now().Add(4 * lease)
	for time.Now().Before(until) {
		ds, err := b.Fetch(ctx, 1)
		if err != nil || len(ds) != 0 {
			t.Fatalf("b fetched %v, %v while a held the lease", ds, err)
		}
	}
	if hctx.Err() != nil {
		t.Fatalf("hold context ended: %v", context.Cause(hctx))
	}
	stop()

	// a stops renewing (as if it died): b takes the entry over.
	d := fetchOne(t, b)
	if d.ID != id || d.Attempt != 2 || len(d.Attempts) != 1 {
		t.Fatalf("reclaimed delivery = %+v", d)
	}
	if err := held.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("a's Ack after takeover = %v, want ErrLeaseLost", err)
	}
	if err := held.Renew(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("a's Renew after takeover = %v, want ErrLeaseLost", err)
	}
	// Release hands it on at once, without waiting for the lease.
	if err := d.Release(ctx); err != nil {
		t.Fatal(err)
	}
	d2 := fetchOne(t, a)
	if d2.ID != id {
		t.Fatalf("after release a got %+v", d2)
	}
	if err := d2.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReclaimCleansDeletedEntries(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	a, b := leasePair(e.q, 50*time.Millisecond)
	e.put(t, "mx1", "x@lists.example.org")
	gone := fetchOne(t, a)
	// Someone deletes the entry by hand while it is pending.
	if err := e.rdb.XDel(ctx, "{mxq}:stream", gone.StreamID).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Fetch(ctx, 1); err != nil {
			t.Fatal(err)
		}
		n, err := e.rdb.XPending(ctx, "{mxq}:stream", "listd").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted entry still pending: %+v", n)
		}
	}
}

func TestRecordFormat(t *testing.T) {
	// Nothing was ever written with version 0. This test pins what a
	// reader of version 1 must accept (fields added later within the
	// version are ignored), that an unknown old version is not guessed
	// at, and that a newer one is recognised as such (TooNew: it is left,
	// see TestLeaveTooNew).
	e := newConsumeEnv(t)
	ctx := context.Background()
	copt := queue.DefaultConsumerOptions()
	copt.Block = 10 * time.Millisecond
	c := e.q.Consumer(copt)
	add := func(v, id, rec string) {
		t.Helper()
		if err := e.rdb.Set(ctx, "{mxq}:body:"+id, "Subject: x\r\n\r\nx\r\n", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream", Values: []any{"v", v, "id", id, "rec", rec, "later_field", "x"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("1", "v1", `{"id":"v1","host":"mx1","from":"a@example.com","rcpts":[{"addr":"l@lists.example.org"}],"arrived":"2026-11-25T10:00:00Z","size":20,"added_later":{"x":1}}`)
	add("0", "v0", `{"id":"v0","host":"mx9"}`)
	add("99", "v99", `{"id":"v99","host":"mx9"}`)
	if err := e.rdb.SAdd(ctx, "{mxq}:inflight:mx9", "v0").Err(); err != nil {
		t.Fatal(err)
	}
	d := fetchOne(t, c)
	if d.Err() != nil || d.ID != "v1" || d.Record.Host != "mx1" || len(d.Pending()) != 1 {
		t.Fatalf("version 1 record: %+v, err %v", d.Record, d.Err())
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	d = fetchOne(t, c)
	if d.Err() == nil || d.TooNew() || d.ID != "v0" {
		t.Fatalf("version 0 record: %+v, want an error", d)
	}
	if err := d.Dead(ctx, d.Err().Error()); err != nil {
		t.Fatal(err)
	}
	dl, err := e.q.DeadLetter(ctx, "v0")
	if err != nil || dl.RecordError == "" {
		t.Errorf("dead letter of v0 = %+v, %v", dl, err)
	}
	if n, _ := e.q.Inflight(ctx, "mx9"); n != 0 {
		t.Errorf("mx9 still counts the dead-lettered v0")
	}
	d = fetchOne(t, c)
	if d.Err() == nil || !d.TooNew() || d.ID != "v99" {
		t.Fatalf("version 99 record: %+v, want it too new", d)
	}
}

func TestRedisRestartKeepsPendingAndGroup(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Lease, copt.Block = "a", 200*time.Millisecond, 10*time.Millisecond
	a := e.q.Consumer(copt)
	id := e.put(t, "mx1", "x@lists.example.org")
	d := fetchOne(t, a)
	e.r.Kill()
	if _, err := a.Fetch(ctx, 1); err == nil {
		t.Fatal("Fetch with Redis down: no error")
	}
	if err := d.Ack(ctx); err == nil {
		t.Fatal("Ack with Redis down: no error")
	}
	e.r.Restart()
	// The pending entry survived in the AOF; a's lease has run out, so a
	// fresh consumer takes it over.
	copt2 := queue.DefaultConsumerOptions()
	copt2.Name, copt2.Lease, copt2.Block, copt2.ReclaimInterval = "b", 200*time.Millisecond, 10*time.Millisecond, time.Millisecond
	b := e.q.Consumer(copt2)
	d = fetchOne(t, b)
	if d.ID != id {
		t.Fatalf("after restart: %+v", d)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	id2 := e.put(t, "mx1", "y@lists.example.org")
	if d := fetchOne(t, a); d.ID != id2 {
		t.Fatalf("new message after restart: %+v", d)
	}
}

func TestIDTime(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC)
	got, ok := queue.IDTime(queue.NewID(at))
	if !ok || !got.Equal(at) {
		t.Errorf("IDTime(NewID(%v)) = %v, %v", at, got, ok)
	}
	if _, ok := queue.IDTime("not-an-id"); ok {
		t.Error("IDTime accepted a foreign id")
	}
}

func TestIdleConsumersForgotten(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Block = "old", 10*time.Millisecond
	old := e.q.Consumer(copt)
	copt2 := queue.DefaultConsumerOptions()
	copt2.Name, copt2.Block = "busy", 10*time.Millisecond
	busy := e.q.Consumer(copt2)
	e.put(t, "mx1", "x@lists.example.org")
	if err := fetchOne(t, old).Ack(ctx); err != nil {
		t.Fatal(err)
	}
	e.put(t, "mx1", "y@lists.example.org")
	fetchOne(t, busy) // holds an entry, never settles it
	names := func() string {
		cs, err := e.rdb.XInfoConsumers(ctx, "{mxq}:stream", "listd").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return strings.Join(out, " ")
	}
	if got := names(); got != "busy old" {
		t.Fatalf("consumers = %q", got)
	}
	// "old" holds nothing and goes once silent for ForgetIdle; "busy"
	// stays, whatever its silence: removing it would drop its entry.
	copt3 := queue.DefaultConsumerOptions()
	copt3.Name, copt3.Block, copt3.Lease = "now", 10*time.Millisecond, time.Hour
	copt3.ReclaimInterval, copt3.ForgetIdle = time.Millisecond, 100*time.Millisecond
	now := e.q.Consumer(copt3)
	deadline := time.Now().Add(10 * time.Second)
	for names() != "busy" {
		if time.Now().After(deadline) {
			t.Fatalf("consumers = %q, want only busy", names())
		}
		if _, err := now.Fetch(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := e.rdb.XPending(ctx, "{mxq}:stream", "listd").Result(); n.Count != 1 {
		t.Errorf("pending = %+v, want busy's entry kept", n)
	}
}

// readAll reads a body reader to its end.
func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A consumer whose lease ran out and that records a recipient after
// another consumer has acknowledged the message writes nothing: no
// done:ID is left that nothing would delete. While the message is queued
// the record is written.
func TestLateMarkLeavesNothing(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	const lease = 200 * time.Millisecond
	a, b := leasePair(e.q, lease)
	id := e.put(t, "mx1", "x@lists.example.org", "y@lists.example.org")

	late := fetchOne(t, a)
	if err := late.Delivered(ctx, "x@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.HLen(ctx, "{mxq}:done:"+id).Result(); n != 1 {
		t.Fatalf("done:%s has %d fields while queued, want 1", id, n)
	}
	// a stops renewing: b takes the message over once the lease is out.
	d := fetchOne(t, b)
	if p := d.Pending(); d.ID != id || len(p) != 1 || p[0].Addr != "y@lists.example.org" {
		t.Fatalf("b got %s pending for %v; want %s pending for y alone", d.ID, p, id)
	}
	if err := d.Delivered(ctx, "y@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := late.Delivered(ctx, "y@lists.example.org"); err != nil {
		t.Errorf("a late record after the ack: %v, want nothing to do", err)
	}
	if ks := e.keys(t); len(ks) != 0 {
		t.Errorf("keys left after the ack and a late record: %v", ks)
	}
}
