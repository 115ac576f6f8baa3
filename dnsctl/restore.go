package dnsctl

import (
	"context"
	"fmt"
	"time"
)

// Restore puts host back: its heartbeat is fresh, the drain flag is
// cleared and it answers SMTP with 220, the original records go back with
// one UPDATE whose prerequisite is the current RRset, every authoritative
// server shows them, and the state and lease are deleted. It continues a
// restore that was killed, and restores a drain stopped at any phase.
func (m *Maintenance) Restore(ctx context.Context, host string) (*Report, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("dnsctl: %w", err)
	}
	st, local, unlock, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st == nil {
		return m.nothingToRestore(ctx, host)
	}
	if !SameName(st.Host, host) {
		return nil, &RefusedError{Reason: fmt.Sprintf("the maintenance in progress is for %s (phase %s), not %s", st.Host, st.Phase, host)}
	}
	m.emit(st.Host, st.Phase, "restoring %s from phase %s", st.Host, st.Phase)
	r := &run{m: m, st: st, local: local}
	lctx, stop, err := r.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := r.step(lctx, PhaseRestoring, r.unflag); err != nil {
		return r.report("restore"), err
	}
	if err := r.step(lctx, PhaseRestored, r.putBack); err != nil {
		return r.report("restore"), err
	}
	if err := r.propagate(lctx, st.Original); err != nil {
		return r.report("restore"), err
	}
	if err := r.finish(lctx); err != nil {
		return r.report("restore"), err
	}
	m.emit(st.Host, PhaseRestored, "restored: %s is back in DNS with %s", st.Host, st.Original.Find(st.Host))
	return r.report("restore"), nil
}

// nothingToRestore answers a restore without state: fine when host is in
// the RRset, a refusal otherwise (its exact records are unknown).
func (m *Maintenance) nothingToRestore(ctx context.Context, host string) (*Report, error) {
	v := m.Zone.Read(ctx, m.Zone.Primary)
	if v.Err != nil {
		return nil, fmt.Errorf("read primary: %w", v.Err)
	}
	if len(v.MX.Find(host)) == 0 {
		return nil, &RefusedError{Reason: fmt.Sprintf("no maintenance state and %s is not in the MX RRset %s: its original records are unknown", host, v.MX)}
	}
	return &Report{Action: "restore", Host: host, Phase: PhaseNone,
		Note: fmt.Sprintf("nothing to restore: no maintenance in progress and %s is in the MX RRset", host)}, nil
}

// unflag checks the host's heartbeat, clears its drain flag, waits until
// it reports so, and checks it answers 220. If it does not, the flag is set
// again and the restore refused: the host stays out of DNS.
func (r *run) unflag(ctx context.Context) error {
	m, st := r.m, r.st
	hosts, err := m.Fleet.Hosts(ctx)
	if err != nil {
		return fmt.Errorf("read heartbeats: %w", err)
	}
	h, ok := heartbeatName(hosts, st.Host)
	maxAge := m.HeartbeatMaxAge
	if !ok || !h.Alive || time.Since(h.LastSeen) > maxAge {
		return &RefusedError{Reason: fmt.Sprintf("%s has no fresh heartbeat: start its mxd first", st.Host)}
	}
	if err := m.Fleet.SetDraining(ctx, h.Host, false); err != nil {
		return fmt.Errorf("clear drain flag of %s: %w", h.Host, err)
	}
	m.emit(st.Host, PhaseRestoring, "drain flag cleared; waiting for %s to report it", h.Host)
	if err := r.waitUndrained(ctx, time.Now()); err != nil {
		return err
	}
	if err := m.probeSMTP(ctx, st.Host); err != nil {
		if ferr := m.Fleet.SetDraining(ctx, h.Host, !st.FlagAt.IsZero()); ferr != nil {
			err = fmt.Errorf("%w (and setting the drain flag again failed: %v)", err, ferr)
		}
		return &RefusedError{Reason: fmt.Sprintf("%s does not answer SMTP with 220: %v", st.Host, err)}
	}
	m.emit(st.Host, PhaseRestoring, "%s answers SMTP with 220", st.Host)
	return nil
}

func (r *run) waitUndrained(ctx context.Context, since time.Time) error {
	deadline := time.Now().Add(r.m.HeartbeatMaxAge)
	for {
		hosts, err := r.m.Fleet.Hosts(ctx)
		if err != nil {
			return fmt.Errorf("read heartbeats: %w", err)
		}
		if h, _ := heartbeatName(hosts, r.st.Host); h.Alive && !h.Draining && h.LastSeen.After(since) {
			return nil
		}
		if time.Now().After(deadline) {
			return &TimeoutError{What: fmt.Sprintf("waiting for %s to report that it no longer drains", r.st.Host)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.m.Poll):
		}
	}
}

// putBack sends the restoring UPDATE unless the primary already shows the
// original RRset.
func (r *run) putBack(ctx context.Context) error {
	st := r.st
	v := r.m.Zone.Read(ctx, r.m.Zone.Primary)
	switch {
	case v.Err != nil:
		return fmt.Errorf("read primary: %w", v.Err)
	case v.MX.Equal(st.Original):
		return nil
	case !v.MX.Equal(st.Removed):
		return &RefusedError{Reason: fmt.Sprintf("the MX RRset changed during the maintenance: expected %s, now %s; "+
			"restoring %s would undo that change", st.Removed, v.MX, st.Original)}
	}
	r.m.emit(st.Host, PhaseRestoring, "UPDATE on %s: restore %s (prerequisite: %s)", r.m.Zone.Primary, st.Original, v.MX)
	return r.landedLate(ctx, r.m.Zone.Restore(ctx, v.MX, st.Original), st.Original)
}
