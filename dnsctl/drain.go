package dnsctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Drain takes host out of the zone's MX RRset and returns once it is idle:
// preflight, lease, persist, remove, propagate, wait the old TTL, set the
// drain flag, wait for no sessions and nothing unconsumed. A drain that was
// killed continues from its persisted phase; a finished one is reported
// again. Refusals are *RefusedError; timeouts *LagError or *TimeoutError.
func (m *Maintenance) Drain(ctx context.Context, host string) (*Report, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("dnsctl: %w", err)
	}
	st, local, unlock, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st != nil && !SameName(st.Host, host) {
		// A state saved before its first step ended has no steps.
		since := "no step recorded"
		if len(st.Steps) > 0 {
			since = "since " + st.Steps[0].Start.Format(time.RFC3339)
		}
		return nil, &RefusedError{Reason: fmt.Sprintf("%s is in maintenance (phase %s, %s); restore it first",
			st.Host, st.Phase, since)}
	}
	if st != nil && !st.Phase.Before(PhaseRestoring) {
		return nil, &RefusedError{Reason: fmt.Sprintf("%s is being restored (phase %s); run restore to finish", st.Host, st.Phase)}
	}
	if st == nil {
		cur, err := m.preflight(ctx, host)
		if err != nil {
			return nil, err
		}
		m.emit(host, PhaseNone, "preflight ok: %s; remaining hosts healthy; all %d authoritative servers agree", cur, len(m.Zone.Addrs()))
		st = &State{ID: randomID(), Zone: m.Zone.zone(), Host: cur.Find(host)[0].Exchange,
			Original: cur, Removed: cur.Without(host)}
	} else if st.Phase == PhaseDrained {
		m.emit(host, st.Phase, "%s is already drained; nothing to do", st.Host)
	} else {
		m.emit(host, st.Phase, "continuing the drain of %s from phase %s", st.Host, st.Phase)
	}
	r := &run{m: m, st: st, local: local}
	lctx, stop, err := r.lease(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := r.drain(lctx); err != nil {
		return r.report("drain"), err
	}
	rep := r.report("drain")
	rep.Safe = true
	return rep, nil
}

func (r *run) drain(ctx context.Context) error {
	m, st := r.m, r.st
	if !st.Phase.Before(PhaseRemoved) {
		if err := r.expectPrimary(ctx, st.Removed, "drain"); err != nil {
			return err
		}
	}
	steps := []struct {
		phase Phase
		fn    func(context.Context) error
	}{
		{PhaseLeased, func(context.Context) error { return nil }},
		{PhaseRemoving, func(context.Context) error { return nil }},
		{PhaseRemoved, r.remove},
		{PhasePropagated, func(ctx context.Context) error { return r.propagate(ctx, st.Removed) }},
		{PhaseTTLWaited, r.waitTTL},
		{PhaseFlagged, r.flag},
		{PhaseDrained, r.waitIdle},
	}
	for _, s := range steps {
		if err := r.step(ctx, s.phase, s.fn); err != nil {
			return err
		}
	}
	m.emit(st.Host, PhaseDrained, "safe: %s is out of DNS, has no sessions and all mail it accepted is consumed", st.Host)
	return nil
}

// expectPrimary refuses when the primary does not show want: the zone was
// changed by someone else during the maintenance, or the state is stale.
func (r *run) expectPrimary(ctx context.Context, want RRset, action string) error {
	v := r.m.Zone.Read(ctx, r.m.Zone.Primary)
	if v.Err != nil {
		return fmt.Errorf("read primary: %w", v.Err)
	}
	if !v.MX.Equal(want) {
		return &RefusedError{Reason: fmt.Sprintf("state says phase %s, so the primary should show %s, but it shows %s; "+
			"the zone was changed outside this maintenance, not continuing the %s", r.st.Phase, want, v.MX, action)}
	}
	return nil
}

// remove sends the UPDATE unless the primary already shows the host gone
// (a run killed after sending it).
func (r *run) remove(ctx context.Context) error {
	st := r.st
	v := r.m.Zone.Read(ctx, r.m.Zone.Primary)
	switch {
	case v.Err != nil:
		return fmt.Errorf("read primary: %w", v.Err)
	case v.MX.Equal(st.Removed):
		r.m.emit(st.Host, PhaseRemoving, "the primary already shows %s removed", st.Host)
		return nil
	case !v.MX.Equal(st.Original):
		return &RefusedError{Reason: fmt.Sprintf("the MX RRset changed since it was saved: was %s, now %s", st.Original, v.MX)}
	}
	r.m.emit(st.Host, PhaseRemoving, "UPDATE on %s: remove %s (prerequisite: %s)", r.m.Zone.Primary, st.Original.Find(st.Host), st.Original)
	_, err := r.m.Zone.Remove(ctx, st.Original, st.Host, r.m.MinRemaining)
	return r.landedLate(ctx, err, st.Removed)
}

// landedLate turns a failed prerequisite into success when the primary
// now shows want. A run killed right after sending its UPDATE leaves it in
// the primary's socket; the primary may apply it after the next run has
// read the RRset and before that run's own UPDATE arrives.
func (r *run) landedLate(ctx context.Context, err error, want RRset) error {
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		return err
	}
	if v := r.m.Zone.Read(ctx, r.m.Zone.Primary); v.Err != nil || !v.MX.Equal(want) {
		return err
	}
	r.m.emit(r.st.Host, r.st.Phase, "the prerequisite failed, but the primary now shows %s: an earlier UPDATE was applied late", want)
	return nil
}

func (r *run) propagate(ctx context.Context, want RRset) error {
	last := ""
	_, err := r.m.Zone.WaitFor(ctx, want, r.m.Propagation, func(p Propagation) {
		var msg string
		if p.Done() {
			msg = fmt.Sprintf("all %d authoritative servers show %s at serial >= %d", len(p.Views), want, p.Serial)
		} else {
			msg = fmt.Sprintf("waiting for %d of %d authoritative servers:", len(p.Lagging), len(p.Views))
			for _, v := range p.Lagging {
				msg += " " + v.Server + " (" + v.Summary() + ")"
			}
		}
		if msg != last {
			r.m.emit(r.st.Host, PhasePropagated, "%s", msg)
			last = msg
		}
	})
	if err == nil {
		r.st.AgreedAt = time.Now().UTC()
	}
	return err
}

// waitTTL waits the old RRset's TTL plus the margin from the moment every
// server agreed: until then resolvers may still hand out the host.
func (r *run) waitTTL(ctx context.Context) error {
	var ttl uint32
	for _, mx := range r.st.Original {
		ttl = max(ttl, mx.TTL)
	}
	until := r.st.AgreedAt.Add(time.Duration(ttl)*time.Second + r.m.Margin)
	for {
		left := time.Until(until)
		if left <= 0 {
			return nil
		}
		r.m.emit(r.st.Host, PhaseTTLWaited, "waiting out the old TTL (%ds + margin): %s left", ttl, left.Round(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, time.Second)):
		}
	}
}

func (r *run) flag(ctx context.Context) error {
	hosts, err := r.m.Fleet.Hosts(ctx)
	if err != nil {
		return fmt.Errorf("read heartbeats: %w", err)
	}
	h, _ := heartbeatName(hosts, r.st.Host)
	r.st.FlagAt = time.Now().UTC()
	if err := r.m.Fleet.SetDraining(ctx, h.Host, true); err != nil {
		return fmt.Errorf("set drain flag of %s: %w", h.Host, err)
	}
	r.m.emit(r.st.Host, PhaseFlagged, "drain flag set: %s now answers new connections 421", h.Host)
	return nil
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
