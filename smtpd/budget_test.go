package smtpd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClaimant is a session as the budget sees it: what pressure answers
// is set by the test, and evict gives the memory back on a goroutine of
// its own, as a session's goroutine does once its read fails.
type fakeClaimant struct {
	mu      sync.Mutex
	score   float64
	ok      bool
	evicted bool
	h       *held
}

func (c *fakeClaimant) pressure(int64) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.score, c.ok && !c.evicted
}

func (c *fakeClaimant) evict() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted {
		return false
	}
	c.evicted = true
	go c.h.releaseAll()
	return true
}

func (c *fakeClaimant) set(score float64, ok bool) {
	c.mu.Lock()
	c.score, c.ok = score, ok
	c.mu.Unlock()
}

func (c *fakeClaimant) wasEvicted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}

// holding makes a holder of n bytes of b with a fake claimant.
func holding(t *testing.T, b *budget, n int64, score float64, ok bool) *fakeClaimant {
	t.Helper()
	c := &fakeClaimant{score: score, ok: ok}
	c.h = b.newHeld(c)
	if !c.h.tryGrow(n) {
		t.Fatalf("%d bytes not free", n)
	}
	return c
}

// A session that waits for memory makes the holders that may be evicted
// give theirs back, the worst first, only as many as it needs; an evicted
// holder gets no more memory.
func TestBudgetEvictsWorstFirst(t *testing.T) {
	b := newBudget(400)
	evictions := 0
	b.onEvict = func() { evictions++ }
	silent := holding(t, b, 200, 1000, true)
	slow := holding(t, b, 100, 10, true)
	fast := holding(t, b, 100, 0, false)
	w := b.newHeld(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.grow(ctx, 150); err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if !silent.wasEvicted() || slow.wasEvicted() || fast.wasEvicted() {
		t.Errorf("evicted: silent %v, slow %v, fast %v; want the silent one only",
			silent.wasEvicted(), slow.wasEvicted(), fast.wasEvicted())
	}
	if evictions != 1 {
		t.Errorf("%d evictions counted, want 1", evictions)
	}
	if err := silent.h.grow(ctx, 1); !errors.Is(err, replyMemoryPressure) {
		t.Errorf("evicted holder's grow: %v, want %v", err, replyMemoryPressure)
	}
	if silent.h.tryGrow(1) {
		t.Error("evicted holder's tryGrow succeeded")
	}
	w.releaseAll()
	slow.h.releaseAll()
	fast.h.releaseAll()
	if got := b.inUse(); got != 0 {
		t.Errorf("%d bytes in use at the end", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freeing != 0 || len(b.holders) != 0 {
		t.Errorf("freeing %d, %d holders left", b.freeing, len(b.holders))
	}
}

// Nobody is evicted while every holder uses its memory: the waiter waits,
// as before. A holder that goes quiet later is evicted then, without a
// new waiter.
func TestBudgetEvictsOnlyWhoMay(t *testing.T) {
	b := newBudget(200)
	busy := holding(t, b, 200, 0, false)
	w := b.newHeld(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*relieveEvery)
	err := w.grow(ctx, 100)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || busy.wasEvicted() {
		t.Fatalf("waiter behind a busy holder: %v, evicted %v; want it to wait", err, busy.wasEvicted())
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queued := make(chan struct{}, 1)
	b.onWait = func(d int) {
		if d > 0 {
			queued <- struct{}{}
		}
	}
	done := make(chan error, 1)
	go func() { done <- w.grow(ctx, 100) }()
	<-queued
	busy.set(5, true)
	if err := <-done; err != nil {
		t.Fatalf("waiter once the holder went quiet: %v", err)
	}
	if !busy.wasEvicted() {
		t.Error("the quiet holder was not evicted")
	}
}
