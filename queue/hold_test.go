package queue_test

import (
	"context"
	"errors"
	"testing"

	"mxq/queue"
)

// Hold's stop may be called more than once (an early stop and a deferred
// one): the later calls do nothing, and the lease is still ours.
func TestHoldStopTwice(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	e.put(t, "mx1", "x@lists.example.org")
	d := fetchOne(t, e.q.Consumer(queue.DefaultConsumerOptions()))
	hctx, stop := d.Hold(ctx)
	stop()
	stop()
	if !errors.Is(hctx.Err(), context.Canceled) {
		t.Errorf("hold context after stop: %v, want context.Canceled", hctx.Err())
	}
	if err := d.Ack(ctx); err != nil {
		t.Errorf("ack after stop: %v", err)
	}
}
