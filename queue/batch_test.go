package queue_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mxq/queue"
)

// Concurrent calls: one batch runs at a time, every item is in exactly
// one batch, and each call returns after its own batch ran.
func TestBatcher(t *testing.T) {
	type item struct {
		n   int
		ran bool
	}
	var b queue.Batcher[*item]
	var running, batches atomic.Int32
	var mu sync.Mutex
	seen := map[int]int{}
	run := func(items []*item) {
		if running.Add(1) != 1 {
			t.Error("two batches ran at once")
		}
		batches.Add(1)
		mu.Lock()
		for _, it := range items {
			seen[it.n]++
			it.ran = true
		}
		mu.Unlock()
		running.Add(-1)
	}
	const n = 500
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it := &item{n: i}
			b.Do(it, run)
			mu.Lock()
			defer mu.Unlock()
			if !it.ran {
				t.Errorf("item %d: Do returned before its batch ran", i)
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d items ran, want %d", len(seen), n)
	}
	for i, k := range seen {
		if k != 1 {
			t.Errorf("item %d was in %d batches", i, k)
		}
	}
	t.Logf("%d items in %d batches", n, batches.Load())
}

// A batch whose run panics ends like any other: its calls panic, and the
// next call runs its own batch instead of waiting for ever.
func TestBatcherPanic(t *testing.T) {
	var b queue.Batcher[int]
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the panic of run", p)
			}
		}()
		b.Do(1, func([]int) { panic("boom") })
	}()
	done := make(chan []int, 1)
	go b.Do(2, func(items []int) { done <- items })
	select {
	case items := <-done:
		if len(items) != 1 || items[0] != 2 {
			t.Errorf("next batch ran %v, want [2]", items)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call after a panicked batch still waits after 10s")
	}
}
