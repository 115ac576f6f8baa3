package dnsctl_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
)

var allFake = []string{"mx1.example.org", "mx2.example.org", "mx3.example.org"}

func TestDrainRestore(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, setup.start, allFake...)
			removed := dnsctl.NewRRset(original[0], original[2])

			rep, err := e.maintenance().Drain(ctx, "mx2.example.org")
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Safe || rep.Phase != dnsctl.PhaseDrained {
				t.Fatalf("drain report %+v, want safe at phase drained", rep)
			}
			logSteps(t, rep)
			if diff := cmp.Diff(everywhere(e.dns, removed), e.views()); diff != "" {
				t.Fatalf("after drain (-want +got)\n%s", diff)
			}
			if on, _ := e.q.Draining(ctx, "mx2.example.org"); !on {
				t.Error("drain flag of mx2 not set after drain")
			}

			// Twice is harmless: the second run reports the drained state.
			rep, err = e.maintenance().Drain(ctx, "MX2.example.org.")
			if err != nil || !rep.Safe {
				t.Fatalf("second drain: %+v, %v", rep, err)
			}

			rep, err = e.maintenance().Restore(ctx, "mx2.example.org")
			if err != nil {
				t.Fatal(err)
			}
			logSteps(t, rep)
			if diff := cmp.Diff(everywhere(e.dns, original), e.views()); diff != "" {
				t.Fatalf("after restore (-want +got)\n%s", diff)
			}
			e.settled()
			if _, err := os.Stat(e.stateFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file left: %v", err)
			}

			rep, err = e.maintenance().Restore(ctx, "mx2.example.org")
			if err != nil || !strings.Contains(rep.Note, "nothing to restore") {
				t.Errorf("second restore: %+v, %v; want nothing to restore", rep, err)
			}
		})
	}
}

func logSteps(t *testing.T, rep *dnsctl.Report) {
	t.Helper()
	for _, s := range rep.Steps {
		t.Logf("%s %s: %s", rep.Action, s.Phase, s.End.Sub(s.Start).Round(time.Millisecond))
	}
}

func TestDrainRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, e *env, m *dnsctl.Maintenance)
		host    string
		reason  string
	}{
		{"last MX", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			nsupdate(t, e.dns, "update delete example.org. MX 10 mx1.example.org.", "update delete example.org. MX 30 mx3.example.org.")
			if _, err := m.Zone.WaitFor(context.Background(), original[1:2], 10*time.Second, nil); err != nil {
				t.Fatal(err)
			}
		}, "mx2.example.org", "would leave 0 MX records"},
		{"below the minimum", func(t *testing.T, e *env, m *dnsctl.Maintenance) { m.MinRemaining = 3 },
			"mx2.example.org", "fewer than the minimum 3"},
		{"not in the RRset", nil, "mx9.example.org", "not in the MX RRset"},
		{"remaining host without heartbeat", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			e.mx["mx3.example.org"].beating.Store(false)
			waitFor(t, "mx3's heartbeat to expire", func() bool { return !e.alive("mx3.example.org") })
		}, "mx2.example.org", "mx3.example.org. has no heartbeat"},
		{"remaining host draining", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			e.q.SetDraining(context.Background(), "mx1.example.org", true)
		}, "mx2.example.org", "mx1.example.org. is draining"},
		{"remaining host not answering SMTP", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			e.listeners["mx1.example.org"].Close()
		}, "mx2.example.org", "mx1.example.org. does not answer SMTP"},
		{"another host in maintenance", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			if _, err := e.maintenance().Drain(context.Background(), "mx3.example.org"); err != nil {
				t.Fatal(err)
			}
		}, "mx2.example.org", "mx3.example.org. is in maintenance"},
		{"no steps yet", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			st := `{"id": "x", "zone": "example.org.", "host": "mx3.example.org.", "phase": "leased"}`
			if err := os.MkdirAll(filepath.Dir(m.StateFile), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m.StateFile, []byte(st), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "mx2.example.org", "mx3.example.org. is in maintenance (phase leased, no step recorded)"},
		{"lease held elsewhere", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			if err := e.lease.Acquire(context.Background(), "other-host/1/x", time.Minute); err != nil {
				t.Fatal(err)
			}
		}, "mx2.example.org", "another dnsctl is running: maintenance lease held by other-host/1/x"},
		{"servers disagree", func(t *testing.T, e *env, m *dnsctl.Maintenance) {
			e.dns.Secondaries[0].Stop()
		}, "mx2.example.org", "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, dnstest.StartBIND, allFake...)
			m := e.maintenance()
			if tc.prepare != nil {
				tc.prepare(t, e, m)
			}
			before := e.primary()
			_, err := m.Drain(context.Background(), tc.host)
			var refused *dnsctl.RefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.reason)
			}
			if diff := cmp.Diff(before, e.primary()); diff != "" {
				t.Errorf("zone changed by a refused drain (-before +after)\n%s", diff)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestDrainWrongKey: the drain stops at the UPDATE with an error naming
// the key, and restore cleans up without touching the zone.
func TestDrainWrongKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dnstest.StartBIND, allFake...)
	m := e.maintenance()
	wrong := dnstest.Keygen(t, t.TempDir(), "hmac-sha256", "mxq-test")
	k, err := dnsctl.LoadKey(wrong.File)
	if err != nil {
		t.Fatal(err)
	}
	m.Zone.Key = k
	_, err = m.Drain(ctx, "mx2.example.org")
	var kerr *dnsctl.KeyError
	if !errors.As(err, &kerr) || !strings.Contains(err.Error(), wrong.File) {
		t.Fatalf("got %v, want a *KeyError naming %s", err, wrong.File)
	}
	if _, err := e.maintenance().Restore(ctx, "mx2.example.org"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(everywhere(e.dns, original), e.views()); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	e.settled()
}

// TestDrainConflict: another writer changes the RRset after the state was
// saved and before the UPDATE; the drain stops with an explanation.
func TestDrainConflict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dnstest.StartBIND, allFake...)
	m := e.maintenance()
	progress := m.Progress
	m.Progress = func(ev dnsctl.Event) {
		progress(ev)
		if ev.Phase == dnsctl.PhaseRemoving && strings.HasPrefix(ev.Msg, "phase removing done") {
			// Out of the zone: BIND refuses an in-zone MX target without an address.
			nsupdate(t, e.dns, "update add example.org. 2 MX 40 mx4.example.net.")
		}
	}
	_, err := m.Drain(ctx, "mx2.example.org")
	var refused *dnsctl.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "changed since it was saved") {
		t.Fatalf("got %v, want a refusal explaining the change", err)
	}
}
