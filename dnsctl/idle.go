package dnsctl

import (
	"context"
	"fmt"
	"time"

	"mxq/queue"
)

// idleness describes how far the host is from idle.
type idleness struct {
	alive     bool // its mxd beats
	confirmed bool // a heartbeat after the flag says it is draining
	sessions  int
	inflight  int64
}

func (i idleness) idle() bool {
	return i.inflight == 0 && (!i.alive || (i.confirmed && i.sessions == 0))
}

func (i idleness) String() string {
	if !i.alive {
		return fmt.Sprintf("no heartbeat (mxd not running), unconsumed %d", i.inflight)
	}
	c := "not yet"
	if i.confirmed {
		c = "yes"
	}
	return fmt.Sprintf("sessions %d, unconsumed %d, mxd confirms draining: %s", i.sessions, i.inflight, c)
}

func measure(h queue.HostStatus, flagAt time.Time) idleness {
	return idleness{
		alive:     h.Alive,
		confirmed: h.Draining && h.LastSeen.After(flagAt),
		sessions:  h.Sessions,
		inflight:  h.Inflight,
	}
}

// waitIdle waits until the host has no sessions and no unacknowledged
// queue entries. Sessions count only from a heartbeat sent after the drain
// flag was set and reporting draining: an older one may predate a new
// connection. A host without heartbeat runs no mxd, so has no sessions;
// its accepted mail must still be consumed.
func (r *run) waitIdle(ctx context.Context) error {
	timeout := r.m.IdleTimeout
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		hosts, err := r.m.Fleet.Hosts(ctx)
		if err != nil {
			return fmt.Errorf("read heartbeats: %w", err)
		}
		h, _ := heartbeatName(hosts, r.st.Host)
		i := measure(h, r.st.FlagAt)
		if s := i.String(); s != last {
			r.m.emit(r.st.Host, PhaseDrained, "%s", s)
			last = s
		}
		if i.idle() {
			return nil
		}
		if time.Now().After(deadline) {
			return &TimeoutError{What: fmt.Sprintf("after %s waiting for %s to become idle: %s", timeout, r.st.Host, i)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.m.Poll):
		}
	}
}
