package queue

import "sync"

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
	items []T
	done  bool
}

// Do adds item to the next batch and returns once run has run on that
// batch. run gets the batch's items in the order of their calls; it
// reports each item's result through the item itself.
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
		return
	}
	b.running = true
	b.next = nil
	b.mu.Unlock()

	run(my.items)

	b.mu.Lock()
	my.done = true
	b.running = false
	b.cond.Broadcast()
	b.mu.Unlock()
}
