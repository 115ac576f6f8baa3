package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
)

// An entry in a format newer than this code reads is left, not
// dead-lettered: handed back at once, noted for mxq stats, and taken over
// by the next consumer without an attempt counted against it.
func TestLeaveTooNew(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	if err := e.rdb.RPush(ctx, "{mxq}:body:v3", "Subject: x\r\n\r\nx\r\n").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream",
		Values: []any{"v", "3", "id", "v3", "rec", `{"id":"v3","host":"mx9","layout":"new"}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Lease, copt.Block = "a", time.Minute, 10*time.Millisecond
	a := e.q.Consumer(copt)
	d := fetchOne(t, a)
	if !d.TooNew() || d.Format() != 3 || d.Err() == nil || d.Record != nil {
		t.Fatalf("format 3 entry: TooNew %v, Format %d, Err %v, Record %+v", d.TooNew(), d.Format(), d.Err(), d.Record)
	}
	if err := d.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := e.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Left) != 1 || st.Left[0].ID != "v3" || st.Left[0].Format != 3 || st.Left[0].Consumer != "a" || st.Dead != 0 || st.Depth != 1 {
		t.Errorf("stats after Leave: left %+v, dead %d, depth %d", st.Left, st.Dead, st.Depth)
	}

	// Another consumer takes it over at once (no lease to wait out), and
	// leaves it again; no attempt is recorded.
	copt2 := queue.DefaultConsumerOptions()
	copt2.Name, copt2.Lease, copt2.Block, copt2.ReclaimInterval = "b", time.Minute, 10*time.Millisecond, time.Millisecond
	b := e.q.Consumer(copt2)
	d = fetchOne(t, b)
	if !d.TooNew() || d.Attempt != 1 || len(d.Attempts) != 0 {
		t.Errorf("taken over: TooNew %v, attempt %d, attempts %+v", d.TooNew(), d.Attempt, d.Attempts)
	}
	if err := d.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.rdb.Exists(ctx, "{mxq}:tries:v3").Val(); n != 0 {
		t.Error("leaving recorded an attempt")
	}
	if st, _ := e.q.Stats(ctx); len(st.Left) != 1 || st.Left[0].Consumer != "b" {
		t.Errorf("left after b: %+v", st.Left)
	}
}

// A consumer that reads a left entry takes it over without counting the
// hand-back as a lost attempt, and the note goes.
func TestLeftEntryTakenOver(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	id := e.put(t, "mx1", "a@lists.example.org")
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Lease, copt.Block = "a", time.Minute, 10*time.Millisecond
	a := e.q.Consumer(copt)
	if err := fetchOne(t, a).Leave(ctx); err != nil {
		t.Fatal(err)
	}
	copt2 := queue.DefaultConsumerOptions()
	copt2.Name, copt2.Lease, copt2.Block, copt2.ReclaimInterval = "b", time.Minute, 10*time.Millisecond, time.Millisecond
	b := e.q.Consumer(copt2)
	d := fetchOne(t, b)
	if d.ID != id || d.Attempt != 1 || len(d.Attempts) != 0 {
		t.Errorf("taken over: id %s attempt %d attempts %+v; want %s, 1, none", d.ID, d.Attempt, d.Attempts, id)
	}
	if n := e.rdb.HLen(ctx, "{mxq}:left").Val(); n != 0 {
		t.Errorf("%d notes left after the take-over", n)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}
