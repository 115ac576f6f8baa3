package smtpd

import (
	"context"
	"sync"
)

// budget bounds the bytes of message data all sessions together hold in
// memory. A session that needs more waits until others give some back; it
// reads nothing from its client meanwhile, so TCP slows the sender down
// instead of mxd growing or refusing mail. Waiters are served in arrival
// order, so a big message cannot starve a small one that asked first, and
// a small request behind a big one is not overtaken forever either.
type budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	waiters []*budgetWaiter
	onWait  func(delta int) // metrics: sessions waiting
	onUse   func(used int64)
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, onWait: func(int) {}, onUse: func(int64) {}}
}

// acquire takes n bytes of the budget, waiting for them while ctx lives.
// A request over the whole budget is granted once nothing else is held,
// so that it cannot wait forever.
func (b *budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.fits(n) {
		b.used += n
		b.onUse(b.used)
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.onWait(1)
	b.mu.Unlock()
	defer b.onWait(-1)
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.used -= n
			b.grant()
		default:
			for i, o := range b.waiters {
				if o == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.grant() // the next waiter may fit now
		}
		return ctx.Err()
	}
}

// tryAcquire takes n bytes if they are free now, without waiting.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used+n > b.limit {
		return false
	}
	b.used += n
	b.onUse(b.used)
	return true
}

func (b *budget) fits(n int64) bool {
	return b.used+n <= b.limit || b.used == 0
}

// inUse is the bytes held now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// release gives n bytes back and wakes the waiters that now fit.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grant()
}

// grant serves waiters in order while the first one fits.
func (b *budget) grant() {
	for len(b.waiters) > 0 && b.fits(b.waiters[0].n) {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	b.onUse(b.used)
}

// held is a session's share of the budget.
type held struct {
	b *budget
	n int64
}

// grow takes n more bytes for the session.
func (h *held) grow(ctx context.Context, n int64) error {
	if err := h.b.acquire(ctx, n); err != nil {
		return err
	}
	h.n += n
	return nil
}

// tryGrow takes n more bytes if they are free now.
func (h *held) tryGrow(n int64) bool {
	if !h.b.tryAcquire(n) {
		return false
	}
	h.n += n
	return true
}

// shrink gives n bytes back.
func (h *held) shrink(n int64) {
	n = min(n, h.n)
	h.n -= n
	h.b.release(n)
}

// releaseAll gives back everything the session holds.
func (h *held) releaseAll() { h.shrink(h.n) }
