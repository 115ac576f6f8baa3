package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"mxq/queue"
)

// A drainer plays the consumer on the lists host: it takes every queued
// message and acknowledges it, which deletes its body and stream entry, as
// discard(8) does for Postfix. It runs while each load runs (-consume
// during, the default: Postfix's queue manager discards while its smtpd
// receives, and listd keeps a production queue short, so Redis reuses the
// memory of the bodies it frees) and after it, until the queue is empty.
// Without it the queue would only grow, and Redis would rewrite its AOF
// over an ever larger data set.
type drainer struct {
	q       *queue.Queue
	c       *queue.Consumer
	mu      sync.Mutex // drain and during's goroutine take turns
	drained atomic.Int64
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

// during drains while a load runs, until stop is called; stop returns
// the first error. It stops between fetches, so that no message is left
// fetched and not acknowledged.
func (d *drainer) during(ctx context.Context) (stop func() error) {
	quit := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-quit:
				errc <- nil
				return
			default:
			}
			if err := d.drain(ctx); err != nil {
				errc <- err
				return
			}
		}
	}()
	return func() error {
		close(quit)
		return <-errc
	}
}

// drain acknowledges messages until a fetch finds none.
func (d *drainer) drain(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
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
			d.drained.Add(1)
		}
	}
}
