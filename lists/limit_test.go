package lists_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"mxq/lists"
)

// gate is a destination whose deliveries wait until released, and which
// records how many ran at once.
type gate struct {
	open           chan struct{}
	now, most, all atomic.Int32
	started        chan struct{}
}

func newGate() *gate { return &gate{open: make(chan struct{}), started: make(chan struct{}, 100)} }

func (g *gate) String() string { return "gate" }

func (g *gate) Deliver(ctx context.Context, _ *lists.Message, _ string) error {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	g.all.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type batchGate struct{ *gate }

func (b batchGate) DeliverBatch(ctx context.Context, m *lists.Message, rcpts []string) []error {
	errs := make([]error, len(rcpts))
	errs[0] = b.Deliver(ctx, m, rcpts[0])
	return errs
}

func TestLimit(t *testing.T) {
	g := newGate()
	d := lists.Limit(g, 3)
	if d.String() != "gate" {
		t.Errorf("String() = %q, want the destination's own", d.String())
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := d.Deliver(context.Background(), nil, "a@lists.example.org"); err != nil {
				t.Error(err)
			}
		})
	}
	for range 3 {
		<-g.started
	}
	if n := g.now.Load(); n != 3 {
		t.Errorf("%d deliveries running with a limit of 3", n)
	}
	// A delivery waiting for a slot gives up with its context, and the
	// error is temporary: the message is retried, not rejected.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := d.Deliver(ctx, nil, "b@lists.example.org")
	if !errors.Is(err, context.Canceled) || lists.IsPermanent(err) {
		t.Errorf("waiting delivery with its context ended: %v, want a temporary context.Canceled", err)
	}
	close(g.open)
	wg.Wait()
	if most, all := g.most.Load(), g.all.Load(); most != 3 || all != 20 {
		t.Errorf("at most %d at once over %d deliveries, want 3 over 20", most, all)
	}

	if lists.Limit(g, 0) != lists.Destination(g) {
		t.Error("Limit(d, 0) should be d itself")
	}
	if _, ok := lists.Limit(batchGate{g}, 2).(lists.BatchDestination); !ok {
		t.Error("a limited BatchDestination lost DeliverBatch")
	}
	if _, ok := lists.Limit(g, 2).(lists.BatchDestination); ok {
		t.Error("a limited plain Destination claims DeliverBatch")
	}
}

// Destinations limited by one Limiter share its slots: a route rebuilt
// while deliveries run on the old one waits for them.
func TestLimiterShared(t *testing.T) {
	l := lists.NewLimiter(2)
	oldGate, newGate := newGate(), newGate()
	old, next := l.Limit(oldGate), l.Limit(newGate)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := old.Deliver(context.Background(), nil, "a@lists.example.org"); err != nil {
				t.Error(err)
			}
		})
	}
	<-oldGate.started
	<-oldGate.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := next.Deliver(ctx, nil, "a@lists.example.org"); !errors.Is(err, context.Canceled) {
		t.Errorf("new destination while the old one holds every slot: %v, want a wait that ends with its context", err)
	}
	if n := newGate.all.Load(); n != 0 {
		t.Errorf("new destination ran %d deliveries beside the old one's 2, limit 2", n)
	}
	close(oldGate.open)
	wg.Wait()
	close(newGate.open)
	if err := next.Deliver(context.Background(), nil, "a@lists.example.org"); err != nil {
		t.Errorf("new destination once the old one is done: %v", err)
	}
	if lists.NewLimiter(0).Limit(oldGate) != lists.Destination(oldGate) {
		t.Error("a nil Limiter should return the destination itself")
	}
}
