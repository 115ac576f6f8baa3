package queue

import (
	"fmt"
	"sync"
)

// Batcher gathers concurrent calls into batches and runs one batch at a
// time: a call that finds no batch running runs its own at once; the
// calls that come in meanwhile wait, and when the running batch is over
// one of them runs all of them together. It is group commit: the queue's
// acknowledgements use it to share Redis's AOF fsyncs (acks.go), and a
// consumer whose destination costs less per batch than per message can
// too (lists.Maildir shares its fsyncs). The zero value is ready to use.
type Batcher[T any] struct {
	mu      sync.Mutex
	cond    *sync.Cond
	next    *batch[T] // gathering
	running bool
}

type batch[T any] struct {
	items    []T
	done     bool
	panicked bool
	p        any // what run panicked with
}

// Do adds item to the next batch and returns once run has run on that
// batch. run gets the batch's items in the order of their calls; it
// reports each item's result through the item itself. When run panics,
// every call of that batch panics too (no item got a result, and none
// may pass for a success), and the next batch runs as usual.
func (b *Batcher[T]) Do(item T, run func([]T)) {
	b.mu.Lock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	if b.next == nil {
		b.next = &batch[T]{}
	}
	my := b.next
	my.items = append(my.items, item)
	for b.running && !my.done {
		b.cond.Wait()
	}
	if my.done {
		b.mu.Unlock()
		if my.panicked {
			panic(fmt.Sprintf("batch run panicked in another call: %v", my.p))
		}
		return
	}
	b.running = true
	b.next = nil
	b.mu.Unlock()
	b.run(my, run)
}

// run runs the batch my and ends it, even when run panics: a batch left
// running would block every later call.
func (b *Batcher[T]) run(my *batch[T], run func([]T)) {
	ok := false
	defer func() {
		var p any
		if !ok {
			// nil only for runtime.Goexit, which goes on by itself.
			p = recover()
		}
		b.mu.Lock()
		my.done, my.panicked, my.p = true, !ok, p
		b.running = false
		b.cond.Broadcast()
		b.mu.Unlock()
		if p != nil {
			panic(p)
		}
	}()
	run(my.items)
	ok = true
}
