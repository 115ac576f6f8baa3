package lists

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mxq/queue"
)

// A Redis failover or restart makes the queue fail for a few seconds.
// The results of a delivery are worth waiting for: a recipient's mark
// that does not reach Redis makes the next attempt deliver to that
// recipient again, and a settlement that does not reach it leaves the
// message to come back only when its lease runs out. So they are sent
// again, with back-off, while the failure is one that passes
// (queue.Transient). Each is safe to send again: a mark writes the same
// value; the settling scripts check that the entry is still pending to
// this consumer, so one that went through the first time (its reply lost)
// answers queue.ErrSettled the second, which is then success.

// rideThrough is how long a write is tried again: a Sentinel failover
// takes a few seconds (down-after-milliseconds plus the election).
const rideThrough = 30 * time.Second

// persist runs op, a write of a delivery's state, and runs it again while
// it fails because the queue is briefly unavailable, for up to
// rideThrough or until ctx ends.
func persist(ctx context.Context, op func(context.Context) error) error {
	var start time.Time
	for try := 0; ; try++ {
		err := op(ctx)
		if try > 0 && errors.Is(err, queue.ErrSettled) {
			// The try before went through; its reply was lost.
			return nil
		}
		if err == nil || !queue.Transient(err) || ctx.Err() != nil {
			return err
		}
		if start.IsZero() {
			start = time.Now()
		}
		d := queue.RetryPause(try)
		if time.Since(start)+d > rideThrough {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// outage follows a run of failed fetches: it paces the tries, and logs
// the first failure, once a minute while they go on, and the end, rather
// than every try.
type outage struct {
	log           *slog.Logger
	start, logged time.Time
	tries         int
}

// failed notes a failed fetch and returns how long to wait before the
// next.
func (o *outage) failed(err error) time.Duration {
	now := time.Now()
	switch {
	case o.tries == 0:
		o.start, o.logged = now, now
		o.log.Warn("fetch from the queue failed; trying again until it answers", "err", err, "cause", queue.Cause(err))
	case now.Sub(o.logged) >= time.Minute:
		o.logged = now
		o.log.Warn("queue still unavailable", "for", now.Sub(o.start).Round(time.Second), "tries", o.tries+1, "err", err)
	}
	o.tries++
	return queue.RetryPause(o.tries - 1)
}

// ok notes a fetch that worked.
func (o *outage) ok() {
	if o.tries > 0 {
		o.log.Info("queue reachable again", "after", time.Since(o.start).Round(time.Millisecond), "tries", o.tries)
	}
	o.tries = 0
}
