package dnsctl_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
)

// killAfter returns a Maintenance whose run stops dead (as if killed: no
// cleanup, lease left to expire) right after phase was persisted.
func (e *env) killAfter(phase dnsctl.Phase) (*dnsctl.Maintenance, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	m := e.maintenance()
	progress := m.Progress
	m.Progress = func(ev dnsctl.Event) {
		progress(ev)
		if strings.HasPrefix(ev.Msg, "phase "+string(phase)+" done") {
			cancel()
		}
	}
	e.t.Cleanup(cancel)
	return m, ctx
}

func TestKilledAndRunAgain(t *testing.T) {
	for _, tc := range []struct {
		phase   dnsctl.Phase
		restore bool // killed during restore, not drain
	}{
		{dnsctl.PhaseLeased, false},
		{dnsctl.PhaseRemoving, false},
		{dnsctl.PhaseRemoved, false},
		{dnsctl.PhasePropagated, false},
		{dnsctl.PhaseTTLWaited, false},
		{dnsctl.PhaseFlagged, false},
		{dnsctl.PhaseRestoring, true},
		{dnsctl.PhaseRestored, true},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dnstest.StartBIND, allFake...)
			ctx := context.Background()
			const host = "mx2.example.org"
			if tc.restore {
				if _, err := e.maintenance().Drain(ctx, host); err != nil {
					t.Fatal(err)
				}
				m, kctx := e.killAfter(tc.phase)
				if _, err := m.Restore(kctx, host); !errors.Is(err, context.Canceled) {
					t.Fatalf("killed restore: got %v, want context.Canceled", err)
				}
			} else {
				m, kctx := e.killAfter(tc.phase)
				if _, err := m.Drain(kctx, host); !errors.Is(err, context.Canceled) {
					t.Fatalf("killed drain: got %v, want context.Canceled", err)
				}
				rep, err := e.maintenance().Drain(ctx, host)
				if err != nil || !rep.Safe {
					t.Fatalf("drain again: %+v, %v", rep, err)
				}
				if diff := cmp.Diff(everywhere(e.dns, dnsctl.NewRRset(original[0], original[2])), e.views()); diff != "" {
					t.Fatalf("after drain (-want +got)\n%s", diff)
				}
			}
			if _, err := e.maintenance().Restore(ctx, host); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(everywhere(e.dns, original), e.views()); diff != "" {
				t.Fatalf("after restore (-want +got)\n%s", diff)
			}
			e.settled()
		})
	}
}

// TestKilledThenRunElsewhere: the killed run's machine is gone (no local
// state file); another machine continues once the old lease expired.
func TestKilledThenRunElsewhere(t *testing.T) {
	e := newEnv(t, dnstest.StartBIND, allFake...)
	ctx := context.Background()
	m, kctx := e.killAfter(dnsctl.PhaseFlagged)
	if _, err := m.Drain(kctx, "mx2.example.org"); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed drain: got %v", err)
	}
	if err := os.Remove(e.stateFile); err != nil {
		t.Fatal(err)
	}
	var rep *dnsctl.Report
	var refusals int
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		rep, err = e.maintenance().Drain(ctx, "mx2.example.org")
		var refused *dnsctl.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "lease held") || time.Now().After(deadline) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		refusals++
		<-time.After(200 * time.Millisecond)
	}
	if !rep.Safe {
		t.Fatalf("report %+v, want safe", rep)
	}
	t.Logf("refused %d times while the killed run's lease was alive", refusals)
	if _, err := e.maintenance().Restore(ctx, "mx2.example.org"); err != nil {
		t.Fatal(err)
	}
	e.settled()
}

// TestUpdateLandedLate: a killed run's UPDATE can reach the primary after
// the next run read the RRset and before its own UPDATE. That one then
// fails its prerequisite, but the RRset is what it wanted: it goes on. The
// other writer here applies the same change right after the run read.
func TestUpdateLandedLate(t *testing.T) {
	const host = "mx2.example.org"
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context, m *dnsctl.Maintenance) (*dnsctl.Report, error)
		late func(t *testing.T, z *dnsctl.Zone)
	}{
		{"drain", func(ctx context.Context, m *dnsctl.Maintenance) (*dnsctl.Report, error) { return m.Drain(ctx, host) },
			func(t *testing.T, z *dnsctl.Zone) {
				if _, err := z.Remove(context.Background(), original, host, 1); err != nil {
					t.Fatal(err)
				}
			}},
		{"restore", func(ctx context.Context, m *dnsctl.Maintenance) (*dnsctl.Report, error) { return m.Restore(ctx, host) },
			func(t *testing.T, z *dnsctl.Zone) {
				if err := z.Restore(context.Background(), original.Without(host), original); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, dnstest.StartBIND, allFake...)
			if tc.name == "restore" {
				if _, err := e.maintenance().Drain(ctx, host); err != nil {
					t.Fatal(err)
				}
			}
			m := e.maintenance()
			progress := m.Progress
			m.Progress = func(ev dnsctl.Event) {
				progress(ev)
				if strings.HasPrefix(ev.Msg, "UPDATE on") {
					tc.late(t, newZone(t, e.dns))
				}
			}
			if _, err := tc.do(ctx, m); err != nil {
				t.Fatal(err)
			}
			if !e.saw("an earlier UPDATE was applied late") {
				t.Error("the run did not meet the late UPDATE")
			}
			if tc.name == "drain" {
				if _, err := e.maintenance().Restore(ctx, host); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(everywhere(e.dns, original), e.views()); diff != "" {
				t.Fatalf("after restore (-want +got)\n%s", diff)
			}
			e.settled()
		})
	}
}
