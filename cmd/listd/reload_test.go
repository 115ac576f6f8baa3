package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// silentServer accepts connections and never greets, so that a delivery
// to it holds its slot until its context ends.
func silentServer(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// A route unchanged by a reload keeps its max_parallel across it: a
// delivery still running on the old route holds the new route's slot
// too. A changed route starts with slots of its own.
func TestReloadKeepsLimits(t *testing.T) {
	same, sameAccepted := silentServer(t)
	changed, changedAccepted := silentServer(t)
	route := func(match, addr string, n int) string {
		return fmt.Sprintf("[[route]]\nmatch = %q\nlmtp = %q\nmax_parallel = %d\n\n", match, addr, n)
	}
	load := func(src string) *config {
		cfg, err := loadConfig(writeConfig(t, src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := load(route("a@lists.example.org", same, 1) + route("b@lists.example.org", changed, 1)).routes(nil)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i, want := range []*atomic.Int32{sameAccepted, changedAccepted} {
		wg.Go(func() { old.Routes[i].To.Deliver(ctx, nil, "a@lists.example.org") })
		waitFor(t, "the old route's delivery to connect", func() bool { return want.Load() == 1 })
	}

	// Route a is unchanged; route b's max_parallel went from 1 to 2.
	next := load(route("new@lists.example.org", same, 4) + route("a@lists.example.org", same, 1) + route("b@lists.example.org", changed, 2)).routes(old)
	ended, stop := context.WithCancel(context.Background())
	stop()
	for range 20 {
		// A free slot and an ended context are both ready: only a
		// slot held by the old delivery makes this wait every time.
		err := next.Routes[1].To.Deliver(ended, nil, "a@lists.example.org")
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "delivery slots") {
			t.Fatalf("unchanged route while the old one runs its max_parallel: %v, want a wait for a slot", err)
		}
	}
	wg.Go(func() { next.Routes[2].To.Deliver(ctx, nil, "b@lists.example.org") })
	waitFor(t, "the changed route's delivery to connect beside the old one", func() bool { return changedAccepted.Load() == 2 })
	wg.Go(func() { next.Routes[0].To.Deliver(ctx, nil, "new@lists.example.org") })
	waitFor(t, "the new route's delivery to connect", func() bool { return sameAccepted.Load() == 2 })
}
