package dnsctl

import (
	"context"
	"time"
)

// Propagation is one round of a wait for an RRset to reach every
// authoritative server.
type Propagation struct {
	Want    RRset
	Primary bool   // the primary shows Want
	Serial  uint32 // the primary's serial, when Primary
	Views   []View // primary first
	Lagging []View // the views that do not show Want at Serial or later
}

// Done reports whether every server shows Want at Serial or later.
func (p Propagation) Done() bool { return p.Primary && len(p.Lagging) == 0 }

// WaitFor queries every authoritative address (Addrs) every Poll until each
// shows want and a serial at least the primary's, and returns the last
// round. When timeout has passed it returns a *LagError that names every
// server that lags and what it showed. progress, if not nil, sees every
// round.
func (z *Zone) WaitFor(ctx context.Context, want RRset, timeout time.Duration, progress func(Propagation)) (Propagation, error) {
	deadline := time.Now().Add(timeout)
	for {
		p := z.round(ctx, want)
		if progress != nil {
			progress(p)
		}
		if p.Done() {
			return p, nil
		}
		if err := ctx.Err(); err != nil {
			return p, err
		}
		if !time.Now().Before(deadline) {
			return p, &LagError{Want: want, Serial: p.Serial, Lagging: p.Lagging}
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(min(z.poll(), time.Until(deadline))):
		}
	}
}

// round reads every server once. Each query is bounded by Timeout, not by
// the overall deadline, so the last round still reports what each server
// said.
func (z *Zone) round(ctx context.Context, want RRset) Propagation {
	p := Propagation{Want: want, Views: z.ReadAll(ctx)}
	if prim := p.Views[0]; prim.Err == nil && prim.MX.Equal(want) {
		p.Primary, p.Serial = true, prim.Serial
	}
	for _, v := range p.Views {
		if v.Err != nil || !v.MX.Equal(want) || !p.Primary || !serialAtLeast(v.Serial, p.Serial) {
			p.Lagging = append(p.Lagging, v)
		}
	}
	return p
}
