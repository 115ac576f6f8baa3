package smtpd

import (
	"context"
	"slices"
	"sync"
	"time"
)

// budget bounds the bytes of message data all sessions together hold in
// memory. A session that needs more waits until others give some back; it
// reads nothing from its client meanwhile, so TCP slows the sender down
// instead of mxd growing or refusing mail. Waiters are served in arrival
// order, so a big message cannot starve a small one that asked first, and
// a small request behind a big one is not overtaken forever either.
//
// Memory held by a session that sends little is memory others wait for:
// while sessions wait, the budget takes memory back from the sessions
// whose claimant says they hold more than they use (see relieve). Those
// that would take longest to send what they hold go first, and only as
// many as the waiters need.
//
// It is not golang.org/x/sync/semaphore.Weighted, which also serves
// waiters in order and takes a context, because relieve needs what that
// semaphore keeps to itself: the bytes its waiters ask for, and each grant
// as it is made. relieve evicts only as many sessions as the waiters are
// short of, counting the bytes evicted sessions have yet to give back
// (freeing), and an eviction gives back what the session was granted
// (held.n); a copy of the semaphore's state kept beside it would miss a
// grant made but not yet returned from Acquire, and evict a session too
// many. Nor does Weighted grant a request over its whole size, which here
// goes through once nothing else is held.
type budget struct {
	mu        sync.Mutex
	limit     int64
	used      int64
	waiters   []*budgetWaiter
	holders   map[*held]struct{} // those with a claimant
	freeing   int64              // bytes of evicted holders not yet given back
	relieving bool               // relieveLoop runs
	onWait    func(delta int)    // metrics: sessions waiting
	onUse     func(used int64)
	onEvict   func()
}

type budgetWaiter struct {
	h     *held
	n     int64
	ready chan struct{}
}

// A claimant is a session holding part of the budget, which may be made
// to give it up (readDeadlines is one).
type claimant interface {
	// pressure says whether the session, holding n bytes, may be evicted
	// now, and how much it deserves it (higher goes first).
	pressure(n int64) (score float64, ok bool)
	// evict makes the session stop reading and give its memory back. It
	// reports false if the session is past the point where it can be.
	evict() bool
}

// relieveEvery is how often the budget looks again for memory to take
// back while sessions wait: a session's rate falls as it stays silent.
const relieveEvery = 250 * time.Millisecond

func newBudget(limit int64) *budget {
	return &budget{limit: limit, holders: map[*held]struct{}{},
		onWait: func(int) {}, onUse: func(int64) {}, onEvict: func() {}}
}

// acquire takes n bytes of the budget for h, waiting for them while ctx
// lives. A request over the whole budget is granted once nothing else is
// held, so that it cannot wait forever. An evicted holder gets
// replyMemoryPressure.
func (b *budget) acquire(ctx context.Context, h *held, n int64) error {
	b.mu.Lock()
	if h.evicted {
		b.mu.Unlock()
		return replyMemoryPressure
	}
	if len(b.waiters) == 0 && b.fits(n) {
		b.take(h, n)
		b.onUse(b.used)
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{h: h, n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.onWait(1)
	b.relieve()
	if !b.relieving {
		b.relieving = true
		go b.relieveLoop()
	}
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
			b.give(h, n)
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

// tryAcquire takes n bytes for h if they are free now, without waiting.
func (b *budget) tryAcquire(h *held, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.evicted || len(b.waiters) > 0 || b.used+n > b.limit {
		return false
	}
	b.take(h, n)
	b.onUse(b.used)
	return true
}

func (b *budget) fits(n int64) bool {
	return b.used+n <= b.limit || b.used == 0
}

// take and give move n bytes between the budget and h, under mu.
func (b *budget) take(h *held, n int64) {
	b.used += n
	h.n += n
}

func (b *budget) give(h *held, n int64) {
	n = min(n, h.n)
	h.n -= n
	b.used -= n
	if d := min(n, h.owed); d > 0 {
		h.owed -= d
		b.freeing -= d
	}
	b.grant()
}

// inUse is the bytes held now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// grant serves waiters in order while the first one fits.
func (b *budget) grant() {
	for len(b.waiters) > 0 && b.fits(b.waiters[0].n) {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.take(w.h, w.n)
		close(w.ready)
	}
	b.onUse(b.used)
}

// relieve evicts, under mu, holders until the memory they give back and
// the memory free cover what the waiters ask for: those whose claimant
// allows it, highest score first.
func (b *budget) relieve() {
	short := -(b.limit - b.used) - b.freeing
	for _, w := range b.waiters {
		short += min(w.n, b.limit)
	}
	if short <= 0 {
		return
	}
	type candidate struct {
		h     *held
		score float64
	}
	var cands []candidate
	for h := range b.holders {
		if h.evicted || h.n == 0 {
			continue
		}
		if score, ok := h.c.pressure(h.n); ok {
			cands = append(cands, candidate{h, score})
		}
	}
	slices.SortFunc(cands, func(x, y candidate) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return 0
	})
	for _, c := range cands {
		if short <= 0 {
			break
		}
		if !c.h.c.evict() {
			continue
		}
		c.h.evicted, c.h.owed = true, c.h.n
		b.freeing += c.h.n
		short -= c.h.n
		b.onEvict()
	}
}

// relieveLoop calls relieve every relieveEvery while sessions wait.
func (b *budget) relieveLoop() {
	t := time.NewTicker(relieveEvery)
	defer t.Stop()
	for range t.C {
		b.mu.Lock()
		if len(b.waiters) == 0 {
			b.relieving = false
			b.mu.Unlock()
			return
		}
		b.relieve()
		b.mu.Unlock()
	}
}

// held is a session's share of the budget. n, owed and evicted are the
// budget's, under its lock.
type held struct {
	b       *budget
	c       claimant // nil: never evicted
	n       int64
	owed    int64 // of n, bytes counted in b.freeing
	evicted bool
}

// newHeld is a share of b for a session; with a claimant, the session
// may be made to give it up until it calls leave.
func (b *budget) newHeld(c claimant) *held {
	h := &held{b: b, c: c}
	if c != nil {
		b.mu.Lock()
		b.holders[h] = struct{}{}
		b.mu.Unlock()
	}
	return h
}

// grow takes n more bytes for the session.
func (h *held) grow(ctx context.Context, n int64) error { return h.b.acquire(ctx, h, n) }

// tryGrow takes n more bytes if they are free now.
func (h *held) tryGrow(n int64) bool { return h.b.tryAcquire(h, n) }

// shrink gives n bytes back.
func (h *held) shrink(n int64) {
	if n == 0 {
		return
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.give(h, n)
}

// releaseAll gives back everything the session holds, and ends its
// claim: it can no longer be evicted.
func (h *held) releaseAll() {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.give(h, h.n)
	delete(h.b.holders, h)
}
