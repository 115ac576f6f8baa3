package smtpd

import (
	"context"
	"sync"
	"time"
)

// writerGate decides how many sessions write batches of big messages to
// the queue's spool at once. Redis is one thread, and with appendfsync
// always it answers the commands of one pass of its event loop only after
// writing and syncing what they all wrote: a small message's commit that
// arrives while many batches are being written waits for all of them.
// Big messages alone go fastest with many writers (each pass, and each
// fsync, carries more bytes); small messages go fastest with few. So the
// gate lets up to max writers in while no small message has been
// committed for a while (quiet), and only shared while small messages are
// coming: big messages then yield, and go on at the lower bound.
type writerGate struct {
	max, shared int
	quiet       time.Duration
	onChange    func(active int)

	mu        sync.Mutex
	active    int
	lastSmall time.Time
	waiters   []chan struct{} // first come, first served
}

func newWriterGate(max, shared int, quiet time.Duration, onChange func(int)) *writerGate {
	return &writerGate{max: max, shared: min(shared, max), quiet: quiet, onChange: onChange}
}

// limit is the bound now, and how long until it may rise (0: it will not
// without a small message's commit changing it).
func (g *writerGate) limit(now time.Time) (int, time.Duration) {
	if left := g.lastSmall.Add(g.quiet).Sub(now); left > 0 {
		return g.shared, left
	}
	return g.max, 0
}

// small notes the commit of a small message: for quiet, at most shared
// sessions write batches. Those already writing finish their batch.
func (g *writerGate) small() {
	now := time.Now()
	g.mu.Lock()
	g.lastSmall = now
	g.mu.Unlock()
}

// acquire waits for a turn to write a batch, first come, first served.
func (g *writerGate) acquire(ctx context.Context) error {
	g.mu.Lock()
	var wait chan struct{}
	for {
		limit, rise := g.limit(time.Now())
		if g.active < limit && (len(g.waiters) == 0 || g.waiters[0] == wait) {
			if wait != nil {
				g.waiters = g.waiters[1:]
			}
			g.active++
			g.changed()
			g.wakeNext()
			g.mu.Unlock()
			return nil
		}
		if wait == nil {
			wait = make(chan struct{}, 1)
			g.waiters = append(g.waiters, wait)
		}
		g.mu.Unlock()
		var timer *time.Timer
		var rose <-chan time.Time
		if rise > 0 {
			timer = time.NewTimer(rise)
			rose = timer.C
		}
		select {
		case <-wait:
		case <-rose:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		g.mu.Lock()
		if ctx.Err() != nil {
			g.remove(wait)
			g.wakeNext()
			g.mu.Unlock()
			return ctx.Err()
		}
	}
}

// release ends a turn taken with acquire.
func (g *writerGate) release() {
	g.mu.Lock()
	g.active--
	g.changed()
	g.wakeNext()
	g.mu.Unlock()
}

// wakeNext wakes the first waiter when there is room for it.
func (g *writerGate) wakeNext() {
	if len(g.waiters) == 0 {
		return
	}
	if limit, _ := g.limit(time.Now()); g.active < limit {
		select {
		case g.waiters[0] <- struct{}{}:
		default: // woken already
		}
	}
}

func (g *writerGate) remove(w chan struct{}) {
	for i, x := range g.waiters {
		if x == w {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			return
		}
	}
}

func (g *writerGate) changed() {
	if g.onChange != nil {
		g.onChange(g.active)
	}
}
