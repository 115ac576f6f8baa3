package main

import (
	"context"
	"fmt"
	"time"

	"mxq/queue"
)

// A drainer plays the consumer on the lists host between mxd's rounds: it
// takes every queued message and acknowledges it, which deletes its body
// and stream entry, as discard(8) does for Postfix. Without it the queue
// would only grow, and Redis would rewrite its AOF over an ever larger data
// set: a cost that production, where listd keeps the queue short, does not
// pay.
type drainer struct {
	q       *queue.Queue
	c       *queue.Consumer
	drained int
}

func newDrainer(redisURL string) (*drainer, error) {
	q, err := queue.Open(redisURL, queue.DefaultOptions())
	if err != nil {
		return nil, err
	}
	copt := queue.DefaultConsumerOptions()
	copt.Group, copt.Name, copt.Block = "bench", "bench-drain", 10*time.Millisecond
	c := q.Consumer(copt)
	return &drainer{q: q, c: c}, nil
}

// drain acknowledges messages until a fetch finds none.
func (d *drainer) drain(ctx context.Context) error {
	for {
		ds, err := d.c.Fetch(ctx, 500)
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		if len(ds) == 0 {
			return nil
		}
		for _, del := range ds {
			if err := del.Ack(ctx); err != nil {
				return fmt.Errorf("drain: ack %s: %w", del.ID, err)
			}
			d.drained++
		}
	}
}
