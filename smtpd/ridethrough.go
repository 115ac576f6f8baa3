package smtpd

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"mxq/queue"
)

// What a session may wait for, as the metrics name it.
const (
	opEnqueue  = "enqueue"
	opSpool    = "spool"
	opRegistry = "registry"
)

// rideThrough runs op, and while it fails because the queue is briefly
// unavailable (queue.Transient: a Redis restart, a failover, a replica
// late to confirm), runs it again with back-off, for up to RideThrough.
// The client meanwhile waits for its reply, as RFC 5321 allows for
// minutes; a fault that heals within seconds then never reaches the
// sender as a 451. op must be safe to run again after a failure:
// queue.Enqueue and queue.Spool.Append are (the dedup key finds an
// enqueue whose reply was lost; an append finds its chunks). Each try
// gets EnqueueTimeout. A shutdown ends the wait in time for the reply to
// be sent before its deadline.
//
// Every queue error it returns is counted by cause: those are the 451s
// and 452s senders see.
func (s *Server) rideThrough(ctx context.Context, what string, op func(context.Context) error) error {
	var start time.Time // of the first transient failure
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.EnqueueTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			if !start.IsZero() {
				s.metrics.rideThrough.WithLabelValues(what, "ok").Observe(time.Since(start).Seconds())
			}
			return nil
		}
		transient := queue.Transient(err) && ctx.Err() == nil
		if transient && start.IsZero() {
			start = time.Now()
			s.metrics.queueWaits.WithLabelValues(what).Inc()
			s.metrics.queueWaiting.Set(float64(s.waiting.Add(1)))
			defer func() { s.metrics.queueWaiting.Set(float64(s.waiting.Add(-1))) }()
		}
		if transient && s.waitToRetry(ctx, start, attempt) {
			continue
		}
		if !start.IsZero() {
			s.metrics.rideThrough.WithLabelValues(what, "gave_up").Observe(time.Since(start).Seconds())
		}
		var qe *queue.Error
		if errors.As(err, &qe) {
			s.metrics.queueErrors.WithLabelValues(what, queue.Cause(err)).Inc()
		}
		return err
	}
}

// QueueWaiting is the number of sessions waiting for the queue now.
func (s *Server) QueueWaiting() int { return int(s.waiting.Load()) }

// waitToRetry sleeps before try attempt+2 and reports whether to make it:
// not when the ride-through time since start would be over, ctx ends, or
// a shutdown's deadline would pass first.
func (s *Server) waitToRetry(ctx context.Context, start time.Time, attempt int) bool {
	d := queue.RetryPause(attempt)
	d = d/2 + rand.N(d/2+1) // jitter: sessions that failed together do not try together
	if time.Since(start)+d > s.cfg.RideThrough {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	done := s.done // closed by a shutdown, already or while waiting
	for {
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		case <-done:
			// Shutting down: go on only while the deadline allows.
			if !s.beforeShutdownDeadline(d) {
				return false
			}
			done = nil
		}
	}
}

// shutdownReplyTime is what a session needs after its last try to
// answer before the shutdown's deadline cuts its connection.
const shutdownReplyTime = time.Second

// beforeShutdownDeadline reports whether waiting d and trying once more
// still leaves time to reply before the shutdown's deadline (none set:
// yes).
func (s *Server) beforeShutdownDeadline(d time.Duration) bool {
	by := s.shutdownBy.Load()
	if by == 0 {
		return true
	}
	return time.Now().Add(d + shutdownReplyTime).Before(time.Unix(0, by))
}
