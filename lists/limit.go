package lists

import (
	"context"
	"fmt"
)

// DefaultMaxParallel is how many deliveries a destination that speaks to
// list software (LMTP, SMTP, a program) should run at once: list software
// is not built for a consumer's full concurrency, a Maildir is.
const DefaultMaxParallel = 8

// Limit returns d allowed at most n deliveries at once; n < 1 returns d
// itself. A Consumer's Concurrency bounds all deliveries together; Limit
// bounds one destination below that, so that a consumer can run many
// cheap deliveries (files in a Maildir) at once without opening as many
// LMTP sessions or starting as many programs. A delivery waiting for its
// turn gives up when ctx ends, with a temporary error.
func Limit(d Destination, n int) Destination {
	return NewLimiter(n).Limit(d)
}

// A Limiter admits at most a fixed number of deliveries at once, across
// every Destination it limits. It outlives them: when the routes are
// rebuilt while deliveries are running (listd's reload), giving an
// unchanged route's new Destination the old route's Limiter keeps the
// bound, where a new Limiter would let the old deliveries and as many
// new ones run side by side.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter of n deliveries at once; n < 1 returns
// nil, which limits nothing.
func NewLimiter(n int) *Limiter {
	if n < 1 {
		return nil
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// Limit returns d, its deliveries counted against l; a nil l returns d
// itself. d stays a BatchDestination when it is one.
func (l *Limiter) Limit(d Destination) Destination {
	if l == nil {
		return d
	}
	ld := limited{d: d, l: l}
	if b, ok := d.(BatchDestination); ok {
		return &limitedBatch{limited: ld, b: b}
	}
	return &ld
}

func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of %d delivery slots: %w", cap(l.slots), ctx.Err())
	}
}

func (l *Limiter) release() { <-l.slots }

type limited struct {
	d Destination
	l *Limiter
}

func (l *limited) String() string { return l.d.String() }

func (l *limited) Deliver(ctx context.Context, m *Message, rcpt string) error {
	if err := l.l.acquire(ctx); err != nil {
		return err
	}
	defer l.l.release()
	return l.d.Deliver(ctx, m, rcpt)
}

type limitedBatch struct {
	limited
	b BatchDestination
}

func (l *limitedBatch) DeliverBatch(ctx context.Context, m *Message, rcpts []string) []error {
	if err := l.l.acquire(ctx); err != nil {
		errs := make([]error, len(rcpts))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer l.l.release()
	return l.b.DeliverBatch(ctx, m, rcpts)
}
