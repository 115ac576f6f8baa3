package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// TestOutOfMemoryEverywhere checks that every kind of write (a command,
// a pipeline, a transaction, a script) is reported as OutOfMemory when
// Redis is past maxmemory.
func TestOutOfMemoryEverywhere(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	if err := e.rdb.Set(ctx, "ballast", strings.Repeat("x", 4<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	_, beatErr := e.q.Beat(ctx, queue.Heartbeat{Host: "mx1"}, time.Minute)
	_, enqueueErr := e.q.Enqueue(ctx, testMessage("mx1", "x"))
	tests := []struct {
		name string
		err  error
	}{
		{"command (drain flag)", e.q.SetDraining(ctx, "mx1", true)},
		{"command (mxq lists add)", e.q.AddRecipients(ctx, "list@lists.example.org")},
		{"pipeline (heartbeat)", beatErr},
		{"transaction (listd routes)", e.q.PublishRoutes(ctx, []string{"list@lists.example.org"})},
		{"script (enqueue)", enqueueErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var qe *queue.Error
			if !errors.As(tt.err, &qe) || qe.Kind != queue.OutOfMemory {
				t.Errorf("err = %v, want an OutOfMemory queue error", tt.err)
			}
		})
	}
}

// TestGroupLost checks that a consumer whose group disappeared (Redis
// lost or flushed it) notices the NOGROUP reply, creates the group again
// and gets the message again.
func TestGroupLost(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	id := e.put(t, "mx1", "a@lists.example.org")
	copt := queue.DefaultConsumerOptions()
	copt.Block = 10 * time.Millisecond
	c := e.q.Consumer(copt)
	d := fetchOne(t, c)
	if err := e.rdb.XGroupDestroy(ctx, "{mxq}:stream", c.Options().Group).Err(); err != nil {
		t.Fatal(err)
	}
	if err := d.Renew(ctx); err == nil || errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Renew without a group = %v, want a queue error", err)
	}
	if d2 := fetchOne(t, c); d2.ID != id {
		t.Fatalf("after the group is created again: got %s, want %s", d2.ID, id)
	}
}
