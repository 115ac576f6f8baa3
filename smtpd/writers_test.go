package smtpd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWriterGate checks the two bounds: max writers while no small
// message was committed within quiet, shared while one was, and max
// again once quiet has passed; waiters are served in order, and one whose
// context ends leaves the line.
func TestWriterGate(t *testing.T) {
	var now int
	g := newWriterGate(4, 1, 200*time.Millisecond, func(n int) { now = n })
	ctx := context.Background()
	for range 4 {
		if err := g.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if now != 4 {
		t.Fatalf("%d writers, want 4", now)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := g.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fifth writer: %v, want to wait until its context ends", err)
	}
	if len(g.waiters) != 0 {
		t.Fatalf("%d waiters left after a timeout", len(g.waiters))
	}

	// A small message: the bound is 1 now. Releasing three of four does
	// not let anyone in; releasing the fourth does.
	g.small()
	order := make(chan int, 2)
	for i := range 2 {
		go func() {
			if err := g.acquire(ctx); err == nil {
				order <- i
			}
		}()
		waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.waiters) == i+1 })
	}
	for range 3 {
		g.release()
	}
	select {
	case i := <-order:
		t.Fatalf("writer %d let in with 1 writing and a bound of 1", i)
	case <-time.After(20 * time.Millisecond):
	}
	g.release()
	if i := <-order; i != 0 {
		t.Fatalf("writer %d let in first, want 0 (first come, first served)", i)
	}
	// The second gets in once quiet has passed, without a release.
	select {
	case i := <-order:
		if i != 1 {
			t.Fatalf("writer %d, want 1", i)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bound did not rise back after quiet")
	}
	if now != 2 {
		t.Fatalf("%d writers, want 2", now)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}
