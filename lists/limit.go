package lists

import (
	"context"
	"fmt"
)

// Limit returns d allowed at most n deliveries at once; n < 1 returns d
// itself. A Consumer's Concurrency bounds all deliveries together; Limit
// bounds one destination below that, so that a consumer can run many
// cheap deliveries (files in a Maildir) at once without opening as many
// LMTP sessions or starting as many programs. A delivery waiting for its
// turn gives up when ctx ends, with a temporary error.
func Limit(d Destination, n int) Destination {
	if n < 1 {
		return d
	}
	l := limited{d: d, slots: make(chan struct{}, n)}
	if b, ok := d.(BatchDestination); ok {
		return &limitedBatch{limited: l, b: b}
	}
	return &l
}

type limited struct {
	d     Destination
	slots chan struct{}
}

func (l *limited) String() string { return l.d.String() }

func (l *limited) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of %d delivery slots: %w", cap(l.slots), ctx.Err())
	}
}

func (l *limited) release() { <-l.slots }

func (l *limited) Deliver(ctx context.Context, m *Message, rcpt string) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.d.Deliver(ctx, m, rcpt)
}

type limitedBatch struct {
	limited
	b BatchDestination
}

func (l *limitedBatch) DeliverBatch(ctx context.Context, m *Message, rcpts []string) []error {
	if err := l.acquire(ctx); err != nil {
		errs := make([]error, len(rcpts))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer l.release()
	return l.b.DeliverBatch(ctx, m, rcpts)
}
