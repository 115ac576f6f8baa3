package upgrade

import (
	"context"
	"fmt"
	"sync"
	"time"

	"mxq/queue"
)

// watch follows, from their heartbeats, the record format each current
// mxd writes, and checks it against the consumers the test runs: while a
// baseline listd (which reads format 1 only) runs, no mxd may write 2; a
// change to 2 comes only after the last baseline listd stopped, a change
// to 1 only after a pin.
type watch struct {
	q       *queue.Queue
	current string // the version current mxds announce

	mu       sync.Mutex
	phase    string
	running  map[string]time.Time // host → start of its current mxd; heartbeats older are stale
	writes   map[string]int       // host → format written, as last seen
	oldLive  bool                 // a baseline listd runs
	oldStop  time.Time            // the last baseline listd exited then
	pinnedAt time.Time            // the last mxq format pin 1; zero while unpinned
	changes  []change
	problems []string

	stop chan struct{}
	done chan struct{}
}

// change is one change of the format an mxd writes.
type change struct {
	host, phase string
	from, to    int
	at          time.Time
	afterOld    time.Duration // since the last baseline listd exited
}

func startWatch(q *queue.Queue, current string) *watch {
	w := &watch{q: q, current: current, running: map[string]time.Time{}, writes: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *watch) run() {
	defer close(w.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		hosts, err := w.q.Hosts(ctx)
		cancel()
		if err != nil {
			continue
		}
		w.observe(hosts)
	}
}

func (w *watch) observe(hosts []queue.HostStatus) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range hosts {
		started, ok := w.running[h.Host]
		if !ok || !h.Alive || h.Version != w.current || h.LastSeen.Before(started) {
			continue
		}
		prev, seen := w.writes[h.Host]
		w.writes[h.Host] = h.Writes
		if w.oldLive && h.Writes != 1 {
			w.problems = append(w.problems, fmt.Sprintf("%s: %s writes format %d while a baseline listd runs", w.phase, h.Host, h.Writes))
		}
		if !seen || prev == h.Writes {
			continue
		}
		c := change{host: h.Host, phase: w.phase, from: prev, to: h.Writes, at: now, afterOld: now.Sub(w.oldStop)}
		w.changes = append(w.changes, c)
		switch {
		case h.Writes == 2 && (w.oldLive || w.oldStop.IsZero()):
			w.problems = append(w.problems, fmt.Sprintf("%s: %s changed to format 2 with no baseline listd gone before", w.phase, h.Host))
		case h.Writes == 1 && w.pinnedAt.IsZero():
			w.problems = append(w.problems, fmt.Sprintf("%s: %s changed to format 1 without a pin or a baseline listd starting", w.phase, h.Host))
		}
	}
}

// started notes that host runs a current mxd from now on (or no current
// one, for a baseline mxd).
func (w *watch) started(host string, current bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.writes, host)
	if current {
		w.running[host] = time.Now()
	} else {
		delete(w.running, host)
	}
}

// setOldLive notes that a baseline listd is about to start (true) or has
// exited (false).
func (w *watch) setOldLive(live bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.oldLive = live
	if !live {
		w.oldStop = time.Now()
	}
}

func (w *watch) setPinned(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pinnedAt = time.Time{}
	if on {
		w.pinnedAt = time.Now()
	}
}

func (w *watch) setPhase(p string) {
	w.mu.Lock()
	w.phase = p
	w.mu.Unlock()
}

// writing returns the format each current mxd writes, as last seen.
func (w *watch) writing() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for h := range w.running {
		out[h] = w.writes[h]
	}
	return out
}

// report returns the changes and the problems seen.
func (w *watch) report() ([]change, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]change(nil), w.changes...), append([]string(nil), w.problems...)
}

func (w *watch) finish() {
	close(w.stop)
	<-w.done
}
