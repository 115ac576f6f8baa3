package network

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Failover is a change of primary by the sentinels, as the run saw it: a
// new config epoch, and the server the sentinels name with it.
type Failover struct {
	Epoch int64
	// Failed is how many elections failed since the failover before
	// (epochs skipped: each try of a sentinel to be elected takes a new
	// epoch, and only a promotion is seen in a config epoch).
	Failed   int64
	From, To string // host names
	Phase    string
	After    time.Duration // from the start of the phase
}

// FailoverWatch asks every sentinel ten times a second which server it
// names as primary, and under which config epoch, and notes each new
// epoch: every failover the sentinels make, those the test asks for and
// those it does not (a sentinel may find a primary it has just promoted
// down too, and fail over again).
type FailoverWatch struct {
	s       *RedisSet
	clients []*redis.Client
	logf    func(format string, args ...any)

	mu      sync.Mutex
	phase   string
	since   time.Time
	epoch   int64
	primary string
	seen    []Failover

	stop, done chan struct{}
}

// WatchFailovers starts watching the sentinels; logf reports each
// failover as it is seen.
func (s *RedisSet) WatchFailovers(logf func(format string, args ...any)) *FailoverWatch {
	w := &FailoverWatch{s: s, logf: logf, epoch: -1, since: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, a := range s.SentinelAddrs() {
		w.clients = append(w.clients, redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, Protocol: 2,
			DisableIdentity: true, PoolSize: 1, DialTimeout: 300 * time.Millisecond,
			ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}))
	}
	go w.run()
	return w
}

func (w *FailoverWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, c := range w.clients {
			w.ask(c)
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// ask reads one sentinel's view: the config epoch (SENTINEL MASTER) and
// the primary (GET-MASTER-ADDR-BY-NAME) in one pipeline, which the
// sentinel answers in one go, so that the two belong together. The
// leader of a failover names the promoted replica, under the new epoch,
// as soon as that server says role:master; the other sentinels once
// they hear of it.
func (w *FailoverWatch) ask(c *redis.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var master, addr *redis.Cmd
	c.Pipelined(ctx, func(p redis.Pipeliner) error {
		master = p.Do(ctx, "SENTINEL", "MASTER", masterName)
		addr = p.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)
		return nil
	})
	fields, err := master.StringSlice()
	if err != nil {
		return
	}
	a, err := addr.StringSlice()
	if err != nil || len(a) != 2 {
		return
	}
	var epoch int64 = -1
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "config-epoch" {
			epoch, _ = strconv.ParseInt(fields[i+1], 10, 64)
		}
	}
	primary := w.name(net.JoinHostPort(a[0], a[1]))
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case epoch <= w.epoch:
		return
	case w.epoch >= 0:
		f := Failover{Epoch: epoch, Failed: epoch - w.epoch - 1, From: w.primary, To: primary, Phase: w.phase, After: time.Since(w.since)}
		w.seen = append(w.seen, f)
		w.logf("failover seen: epoch %d (%d failed elections before it), %s → %s, %v into phase %q",
			f.Epoch, f.Failed, f.From, f.To, round(f.After), f.Phase)
	}
	w.epoch, w.primary = epoch, primary
}

// name is the host of the server at addr, or addr.
func (w *FailoverWatch) name(addr string) string {
	if r := w.s.server(addr); r != nil {
		return r.Host.Name
	}
	return addr
}

// SetPhase labels the failovers seen from now on.
func (w *FailoverWatch) SetPhase(name string) {
	w.mu.Lock()
	w.phase, w.since = name, time.Now()
	w.mu.Unlock()
}

// Seen returns the failovers seen so far, in order.
func (w *FailoverWatch) Seen() []Failover {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Failover(nil), w.seen...)
}

// In returns the failovers seen in phase.
func (w *FailoverWatch) In(phase string) []Failover {
	var out []Failover
	for _, f := range w.Seen() {
		if f.Phase == phase {
			out = append(out, f)
		}
	}
	return out
}

// Stop ends the watch; it may be called more than once.
func (w *FailoverWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	for _, c := range w.clients {
		c.Close()
	}
}
