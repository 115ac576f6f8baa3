package smtpd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"mxq/queue"
)

// Beater records the host's heartbeat and returns its drain flag.
type Beater interface {
	Beat(ctx context.Context, hb queue.Heartbeat, ttl time.Duration) (draining bool, err error)
}

// DefaultHeartbeatInterval is how often mxd's Heartbeat beats by
// default (heartbeat_interval).
const DefaultHeartbeatInterval = time.Second

// Heartbeat publishes the server's state every Interval and applies the
// drain flag it reads back. A host that stops beating disappears after
// TTL. Health reflects the last beat: it fails while the host drains, or
// once the queue has been unreachable for longer than sessions wait for
// it (Config.RideThrough): an outage they ride through is no reason for
// a load balancer to send the mail elsewhere.
type Heartbeat struct {
	Server *Server
	Beater Beater
	// Interval is how often it beats: more than 0 (see
	// DefaultHeartbeatInterval).
	Interval time.Duration
	// TTL is five intervals when zero: a host missing a beat or two
	// (a slow Redis) does not vanish.
	TTL time.Duration

	lastOK atomic.Int64 // unix nanoseconds of the last successful beat
}

// Run beats until ctx ends. An Interval of 0 or less is its one error.
func (h *Heartbeat) Run(ctx context.Context) error {
	if h.Interval <= 0 {
		return fmt.Errorf("smtpd: Heartbeat Interval %v: want more than 0", h.Interval)
	}
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		h.beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *Heartbeat) beat(ctx context.Context) {
	s := h.Server
	hb := queue.Heartbeat{
		Host:     s.cfg.Hostname,
		Sessions: s.Sessions(),
		Draining: s.Draining() || s.closing.Load(),
		Version:  s.cfg.Version,
		Seen:     time.Now().UTC(),
	}
	if n := s.lastEnq.Load(); n != 0 {
		hb.LastEnqueue = time.Unix(0, n).UTC()
	}
	cctx, cancel := context.WithTimeout(ctx, h.Interval)
	ttl := h.TTL
	if ttl <= 0 {
		ttl = 5 * h.Interval
	}
	draining, err := h.Beater.Beat(cctx, hb, ttl)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("heartbeat", "err", err)
		}
		return
	}
	h.lastOK.Store(time.Now().UnixNano())
	s.SetDraining(draining)
}

// Health says whether a load balancer should send connections here.
func (h *Heartbeat) Health() error {
	last := h.lastOK.Load()
	switch {
	case last == 0 || time.Since(time.Unix(0, last)) > max(3*h.Interval, h.Server.cfg.RideThrough):
		return errors.New("queue unreachable")
	case h.Server.Draining():
		return errors.New("draining")
	case h.Server.closing.Load():
		return errors.New("shutting down")
	}
	return nil
}
