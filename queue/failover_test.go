package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// waitOnline polls until primary has a replica online.
func waitOnline(t *testing.T, primary *queuetest.Redis) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := rdb.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "state=online") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica online within 20s:\n%s", info)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// With Options.Replicas, acknowledgements and per-recipient marks wait
// for a replica, in their batch: with the replica running each is on it
// when it returns; with the replica stopped (SIGSTOP) each is still an
// acknowledgement, and counted as unconfirmed. The script cache was
// flushed first, as after a failover (SCRIPT LOAD is not replicated): the
// batch, a pipeline on a connection of its own that ends with WAIT,
// loads the script and sends again what Redis refused.
func TestAcksWaitForReplicas(t *testing.T) {
	primary := queuetest.StartRedis(t, queuetest.Config("repl-diskless-sync-delay 0"))
	replica := queuetest.StartRedis(t, queuetest.Config("replicaof "+strings.Replace(primary.Addr(), ":", " ", 1)))
	waitOnline(t, primary)
	qopt := queue.DefaultOptions()
	qopt.Timeout, qopt.Replicas, qopt.ReplicaTimeout = 2*time.Second, 1, 300*time.Millisecond
	q := open(t, primary.URL(), qopt)
	onPrimary := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	t.Cleanup(func() { onPrimary.Close() })
	onReplica := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { onReplica.Close() })
	ctx := context.Background()

	// The messages go in without WAIT: what is tested is the consumer's
	// writes, and a replica that has just come online may take longer
	// than the short ReplicaTimeout to confirm its first writes.
	qopt2 := queue.DefaultOptions()
	qopt2.Timeout = 2 * time.Second
	producer := open(t, primary.URL(), qopt2)
	const n = 20
	for i := range n {
		if _, err := producer.Enqueue(ctx, testMessage("mx1", fmt.Sprint("message ", i))); err != nil {
			t.Fatal(err)
		}
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block = 20 * time.Millisecond
	c := q.Consumer(copt)
	ds := fetchN(t, c, n)
	if err := onPrimary.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	settle := func(ds []*queue.Delivery) {
		t.Helper()
		errs := make([]error, len(ds))
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[i] = d.Delivered(ctx, "~bob/list@lists.example.org"); errs[i] == nil {
					errs[i] = d.Ack(ctx)
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", ds[i].ID, err)
			}
		}
	}

	// The producer did not wait for the replica; a write and a WAIT on one
	// connection of its own does: the replica applies writes in order.
	caughtUp := onPrimary.Conn()
	if err := caughtUp.Set(ctx, "caught-up", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := caughtUp.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT for the replica to catch up: %d, %v", n, err)
	}
	caughtUp.Close()
	if k, _ := onReplica.Keys(ctx, "{mxq}:*"+ds[0].ID).Result(); len(k) == 0 {
		t.Fatalf("the replica has no key of %s before its ack", ds[0].ID)
	}
	t0 := time.Now()
	settle(ds[:n/2])
	t.Logf("confirmed in %v", time.Since(t0))
	for _, d := range ds[:n/2] {
		if k, _ := onReplica.Keys(ctx, "{mxq}:*"+d.ID).Result(); len(k) > 0 {
			t.Errorf("acknowledged %s, confirmed, yet the replica still has %v", d.ID, k)
		}
	}
	if st := c.Stats(); st.UnconfirmedAcks != 0 || st.UnconfirmedMarks != 0 {
		t.Errorf("with the replica running: %+v, want nothing unconfirmed", st)
	}

	replica.Pause()
	t0 = time.Now()
	settle(ds[n/2:])
	t.Logf("unconfirmed in %v", time.Since(t0))
	replica.Resume()
	if st := c.Stats(); st.UnconfirmedAcks != n/2 || st.UnconfirmedMarks != n/2 {
		t.Errorf("with the replica stopped: %+v, want %d acks and %d marks unconfirmed", st, n/2, n/2)
	}
	for _, d := range ds {
		if k, _ := onPrimary.Keys(ctx, "{mxq}:*"+d.ID).Result(); len(k) > 0 {
			t.Errorf("keys left after the ack of %s: %v", d.ID, k)
		}
	}
}

// After a failure that passed (here Redis stopped and started again), a
// consumer takes back at once its own pending entry that none of its
// deliveries holds (its acknowledgement never reached Redis), without
// waiting out the lease, and leaves alone the one a delivery still holds.
// The entry taken back reports that it was acknowledged before.
func TestTakeBackAfterFailure(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	copt := queue.DefaultConsumerOptions()
	copt.Lease, copt.Block = time.Hour, 10*time.Millisecond
	c := e.q.Consumer(copt)
	e.put(t, "mx1", "a@lists.example.org")
	lost := fetchOne(t, c)
	e.put(t, "mx1", "a@lists.example.org")
	held := fetchOne(t, c)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := lost.Ack(gone); err == nil {
		t.Fatal("Ack with a cancelled context: no error")
	}
	if ds, err := c.Fetch(ctx, 10); err != nil || len(ds) != 0 {
		t.Fatalf("before any failure: fetched %d, %v; want nothing (the lease is an hour)", len(ds), err)
	}

	e.r.Stop()
	if _, err := c.Fetch(ctx, 10); !queue.Transient(err) {
		t.Fatalf("Fetch with Redis stopped = %v, want a transient error", err)
	}
	e.r.Restart()
	var back []*queue.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(back) == 0 && time.Now().Before(deadline) {
		back, _ = c.Fetch(ctx, 10)
	}
	if len(back) != 1 || back[0].StreamID != lost.StreamID || !back[0].AckedBefore() {
		t.Fatalf("after the restart fetched %v, want only %s, acknowledged before", back, lost.StreamID)
	}
	if n := c.Stats().TakenBack; n != 1 {
		t.Errorf("TakenBack = %d, want 1", n)
	}
	for _, d := range []*queue.Delivery{back[0], held} {
		if err := d.Ack(ctx); err != nil {
			t.Errorf("ack %s: %v", d.ID, err)
		}
	}
	if ds, err := c.Fetch(ctx, 10); err != nil || len(ds) != 0 {
		t.Errorf("after both acks: fetched %d, %v", len(ds), err)
	}
	if err := held.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("second ack = %v, want ErrLeaseLost", err)
	}
}
