package dnsctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mxq/maintenance"
	"mxq/queue"
	"mxq/setting"
)

// Fleet is what maintenance needs from the shared queue: the MX hosts'
// heartbeats and accounting, and their drain flags. *queue.Queue
// implements it.
type Fleet interface {
	Hosts(ctx context.Context) ([]queue.HostStatus, error)
	SetDraining(ctx context.Context, host string, on bool) error
	Depth(ctx context.Context) (int64, error)
}

// LeaseStore is the maintenance lease and state that every dnsctl
// shares: one run at a time, and the next continues what a killed one
// left. *maintenance.Store implements it.
type LeaseStore interface {
	Acquire(ctx context.Context, owner string, ttl time.Duration) error
	Renew(ctx context.Context, owner string, ttl time.Duration) error
	Current(ctx context.Context) (maintenance.Lease, error)
	Save(ctx context.Context, owner string, state []byte) error
	Load(ctx context.Context) ([]byte, error)
	Clear(ctx context.Context, owner string) error
}

// Event is one progress line.
type Event struct {
	Time  time.Time `json:"time"`
	Host  string    `json:"host"`
	Phase Phase     `json:"phase"`
	Msg   string    `json:"msg"`
}

// Maintenance drains and restores one MX host at a time. Its settings
// are used as they are: start from Defaults. Drain and Restore refuse
// what Check refuses, and fill nothing in.
type Maintenance struct {
	Zone      *Zone
	Fleet     Fleet
	Lease     LeaseStore
	StateFile string // local copy of the state, written with fsync and rename

	MinRemaining    int           // MX records that must remain
	SMTPPort        int           // probed on MX hosts
	Margin          time.Duration // added to the old TTL before setting the drain flag
	Propagation     time.Duration // how long every authoritative may take to agree
	IdleTimeout     time.Duration // how long the host may take to become idle
	HeartbeatMaxAge time.Duration // older heartbeats are not fresh
	LeaseTTL        time.Duration // renewed every LeaseTTL/3 while running
	Poll            time.Duration // between checks of the host's counts

	// Probe checks that host answers SMTP with 220; nil probes
	// SMTPPort on each of the host's addresses.
	Probe func(ctx context.Context, host string) error
	// Progress sees every progress event; nil drops them.
	Progress func(Event)
}

// Report is the outcome of Drain or Restore.
type Report struct {
	Action   string `json:"action"`
	Host     string `json:"host"`
	Phase    Phase  `json:"phase"`
	Safe     bool   `json:"safe"` // drain: the host is out of DNS and idle
	Original RRset  `json:"original"`
	Steps    []Step `json:"steps"`
	Note     string `json:"note,omitempty"`
}

// Defaults are dnsctl's settings, each stated here alone. The live
// objects (Zone, Fleet, Lease) and StateFile are the caller's.
func Defaults() Maintenance {
	return Maintenance{
		MinRemaining:    1,
		SMTPPort:        25,
		Margin:          5 * time.Second,
		Propagation:     2 * time.Minute,
		IdleTimeout:     time.Hour,
		HeartbeatMaxAge: 30 * time.Second,
		LeaseTTL:        30 * time.Second,
		Poll:            500 * time.Millisecond,
	}
}

// Check reports each setting of m that Drain and Restore cannot use, as
// a *setting.Error.
func (m *Maintenance) Check() error {
	ck := setting.For(m)
	// BIND and Knot both delete the last MX record without complaint:
	// this guard is dnsctl's.
	if m.MinRemaining < 1 {
		ck.Add(&m.MinRemaining, "want 1 or more: at least 1 MX record must remain")
	}
	setting.Between(ck, &m.SMTPPort, 1, 65535)
	ck.Required(&m.StateFile)
	setting.NotNegative(ck, &m.Margin)
	for _, d := range []*time.Duration{&m.Propagation, &m.IdleTimeout, &m.HeartbeatMaxAge, &m.LeaseTTL, &m.Poll} {
		setting.Positive(ck, d)
	}
	return ck.Err()
}

func (m *Maintenance) emit(host string, ph Phase, format string, a ...any) {
	if m.Progress != nil {
		m.Progress(Event{Time: time.Now(), Host: host, Phase: ph, Msg: fmt.Sprintf(format, a...)})
	}
}

// run is one drain or restore: it holds the local lock, and the lease
// while working, and saves the state after each phase.
type run struct {
	m     *Maintenance
	st    *State
	local bool // the local file holds this maintenance with our token
}

// begin opens a drain or restore: it takes the local lock, so that two
// runs on one machine never share the state file, and reads the
// maintenance in progress under it (see load). The caller runs unlock
// when it is done; on an error the lock is already released.
func (m *Maintenance) begin(ctx context.Context) (st *State, local bool, unlock func(), err error) {
	if unlock, err = lockFile(m.StateFile); err != nil {
		return nil, false, nil, err
	}
	if st, local, err = m.load(ctx); err != nil {
		unlock()
		return nil, false, nil, err
	}
	return st, local, unlock, nil
}

// load returns the maintenance in progress (nil if none) and whether the
// local file holds it with the owner token of that copy.
func (m *Maintenance) load(ctx context.Context) (*State, bool, error) {
	local, err := readStateFile(m.StateFile)
	if err != nil {
		return nil, false, err
	}
	b, err := m.Lease.Load(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("load maintenance state: %w", err)
	}
	var remote *State
	if b != nil {
		remote = new(State)
		if err := json.Unmarshal(b, remote); err != nil {
			return nil, false, fmt.Errorf("maintenance state in redis: %w", err)
		}
	}
	st := pickState(local, remote)
	return st, st != nil && local != nil && local.ID == st.ID, nil
}

// lease takes the lease for r.st.Owner (a new token unless the local file
// holds this maintenance) and keeps it renewed until the returned context
// ends. The context is cancelled with maintenance.ErrLost if it is lost.
func (r *run) lease(ctx context.Context) (context.Context, func(), error) {
	if !r.local {
		r.st.Owner = newToken()
	}
	ttl := r.m.LeaseTTL
	if err := r.m.Lease.Acquire(ctx, r.st.Owner, ttl); err != nil {
		var held *maintenance.LeaseHeldError
		if errors.As(err, &held) {
			return nil, nil, &RefusedError{Reason: "another dnsctl is running: " + held.Error()}
		}
		return nil, nil, fmt.Errorf("acquire lease: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := r.m.Lease.Renew(ctx, r.st.Owner, ttl)
			if errors.Is(err, maintenance.ErrLost) {
				cancel(fmt.Errorf("%w: another dnsctl took over", maintenance.ErrLost))
				return
			}
		}
	}()
	return ctx, func() { cancel(nil); <-done }, nil
}

// save persists the state: first the local file, then Redis (fenced by the
// lease). The higher Seq wins when they differ after a crash in between.
func (r *run) save(ctx context.Context) error {
	r.st.Seq++
	r.st.Updated = time.Now().UTC()
	if err := writeStateFile(r.m.StateFile, r.st); err != nil {
		return err
	}
	b, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	if err := r.m.Lease.Save(ctx, r.st.Owner, b); err != nil {
		return fmt.Errorf("save maintenance state: %w", err)
	}
	r.local = true
	return nil
}

// step runs fn unless the state is already at phase or later, then
// records phase with its timing and saves.
func (r *run) step(ctx context.Context, phase Phase, fn func(ctx context.Context) error) error {
	if !r.st.Phase.Before(phase) {
		return nil
	}
	start := time.Now()
	if err := fn(ctx); err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return fmt.Errorf("%s: %w", phase, cause)
		}
		return err
	}
	r.st.Phase = phase
	r.st.Steps = append(r.st.Steps, Step{Phase: phase, Start: start.UTC(), End: time.Now().UTC()})
	if err := r.save(ctx); err != nil {
		return err
	}
	r.m.emit(r.st.Host, phase, "phase %s done in %s", phase, time.Since(start).Round(time.Millisecond))
	return nil
}

// finish deletes the state everywhere and releases the lease.
func (r *run) finish(ctx context.Context) error {
	if err := r.m.Lease.Clear(ctx, r.st.Owner); err != nil {
		return fmt.Errorf("clear maintenance state: %w", err)
	}
	return removeStateFile(r.m.StateFile)
}

func (r *run) report(action string) *Report {
	return &Report{Action: action, Host: r.st.Host, Phase: r.st.Phase, Original: r.st.Original, Steps: r.st.Steps}
}

// heartbeatName returns the name host's mxd uses in its heartbeat (the
// exchange without its final dot when it has none yet).
func heartbeatName(hosts []queue.HostStatus, exchange string) (queue.HostStatus, bool) {
	for _, h := range hosts {
		if SameName(h.Host, exchange) {
			return h, true
		}
	}
	return queue.HostStatus{Host: trimDot(exchange)}, false
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
