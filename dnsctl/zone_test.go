package dnsctl_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
)

// setups are the real server configurations every DNS test runs against.
var setups = []struct {
	name  string
	start func(testing.TB) *dnstest.Servers
}{
	{"bind", dnstest.StartBIND},
	{"knot", dnstest.StartKnot},
}

func newZone(t testing.TB, s *dnstest.Servers) *dnsctl.Zone {
	t.Helper()
	k, err := dnsctl.LoadKey(s.Key.File)
	if err != nil {
		t.Fatal(err)
	}
	return &dnsctl.Zone{Name: dnstest.Zone, Primary: s.Primary.Addr, Servers: s.Addrs(), Key: k,
		Timeout: time.Second, Poll: 50 * time.Millisecond}
}

// original is the MX RRset of dnstest.ZoneText.
var original = dnsctl.NewRRset(
	dnsctl.MX{Preference: 10, Exchange: "mx1.example.org.", TTL: dnstest.MXTTL},
	dnsctl.MX{Preference: 20, Exchange: "mx2.example.org.", TTL: dnstest.MXTTL},
	dnsctl.MX{Preference: 30, Exchange: "mx3.example.org.", TTL: dnstest.MXTTL},
)

// mxOf returns what each server shows, by server.
func mxOf(t testing.TB, views []dnsctl.View) map[string]dnsctl.RRset {
	t.Helper()
	got := map[string]dnsctl.RRset{}
	for _, v := range views {
		if v.Err != nil {
			t.Fatalf("%s: %v", v.Server, v.Err)
		}
		got[v.Server] = v.MX
	}
	return got
}

func everywhere(s *dnstest.Servers, set dnsctl.RRset) map[string]dnsctl.RRset {
	want := map[string]dnsctl.RRset{}
	for _, a := range s.Addrs() {
		want[a] = set
	}
	return want
}

func TestRemoveRestore(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			s := setup.start(t)
			z := newZone(t, s)
			views := z.ReadAll(ctx)
			if diff := cmp.Diff(everywhere(s, original), mxOf(t, views)); diff != "" {
				t.Fatalf("before (-want +got)\n%s", diff)
			}
			if !dnsctl.Agree(views) {
				t.Fatalf("servers do not agree: %+v", views)
			}

			target, err := z.Remove(ctx, views[0].MX, "MX2.example.org", 1)
			if err != nil {
				t.Fatal(err)
			}
			p, err := z.WaitFor(ctx, target, 10*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(everywhere(s, dnsctl.NewRRset(original[0], original[2])), mxOf(t, p.Views)); diff != "" {
				t.Fatalf("after remove (-want +got)\n%s", diff)
			}

			if err := z.Restore(ctx, target, original); err != nil {
				t.Fatal(err)
			}
			p, err = z.WaitFor(ctx, original, 10*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(everywhere(s, original), mxOf(t, p.Views)); diff != "" {
				t.Fatalf("after restore (-want +got)\n%s", diff)
			}
			if !serialAfter(p.Views[0].Serial, views[0].Serial) {
				t.Errorf("serial %d after two updates, was %d", p.Views[0].Serial, views[0].Serial)
			}
		})
	}
}

func serialAfter(a, b uint32) bool { return int32(a-b) > 0 }

// TestRestoreTTL restores records whose TTL differs from the current ones:
// the restored set must carry the original TTLs exactly.
func TestRestoreTTL(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			s := setup.start(t)
			z := newZone(t, s)
			odd := dnsctl.NewRRset(
				dnsctl.MX{Preference: 10, Exchange: "mx1.example.org.", TTL: 7},
				dnsctl.MX{Preference: 5, Exchange: "mx2.example.org.", TTL: 7},
			)
			if err := z.Restore(ctx, original, odd); err != nil {
				t.Fatal(err)
			}
			if err := z.Restore(ctx, odd, original); err != nil {
				t.Fatal(err)
			}
			p, err := z.WaitFor(ctx, original, 10*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(everywhere(s, original), mxOf(t, p.Views)); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestKeyRejected(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			s := setup.start(t)
			z := newZone(t, s)
			other := dnstest.Keygen(t, t.TempDir(), "hmac-sha256", "mxq-test")
			unknown := dnstest.Keygen(t, t.TempDir(), "hmac-sha256", "nobody")
			sha512 := dnstest.Keygen(t, t.TempDir(), "hmac-sha512", "mxq-test")
			for _, k := range []dnstest.Key{other, unknown, sha512} {
				key, err := dnsctl.LoadKey(k.File)
				if err != nil {
					t.Fatal(err)
				}
				z.Key = key
				_, err = z.Remove(ctx, original, "mx2.example.org.", 1)
				var kerr *dnsctl.KeyError
				if !errors.As(err, &kerr) {
					t.Fatalf("%s: got %v, want a *KeyError", k.File, err)
				}
				if msg := err.Error(); !strings.Contains(msg, k.Name) || !strings.Contains(msg, k.File) {
					t.Errorf("error %q does not name key %s (%s)", msg, k.Name, k.File)
				}
				t.Logf("%s: %v", k.File, err)
			}
			if diff := cmp.Diff(everywhere(s, original), mxOf(t, z.ReadAll(ctx))); diff != "" {
				t.Fatalf("zone changed (-want +got)\n%s", diff)
			}
		})
	}
}

func TestMissingKey(t *testing.T) {
	_, err := dnsctl.LoadKey(t.TempDir() + "/absent.key")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "absent.key") {
		t.Errorf("got %v, want a not-exist error naming absent.key", err)
	}
}

// TestConflict lets nsupdate, the reference client, change the RRset
// between dnsctl's read and its UPDATE.
func TestConflict(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			s := setup.start(t)
			z := newZone(t, s)
			read := z.Read(ctx, z.Primary)
			if read.Err != nil {
				t.Fatal(read.Err)
			}
			nsupdate(t, s, "update delete example.org. MX 30 mx3.example.org.")

			_, err := z.Remove(ctx, read.MX, "mx2.example.org.", 1)
			var conflict *dnsctl.ConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("got %v, want a *ConflictError", err)
			}
			if !strings.Contains(err.Error(), "another writer") {
				t.Errorf("error %q does not explain the concurrent change", err)
			}
			want := dnsctl.NewRRset(original[0], original[1])
			if got := z.Read(ctx, z.Primary); !got.MX.Equal(want) {
				t.Errorf("primary shows %s, want %s (only nsupdate's change)", got.MX, want)
			}
			if err := z.Restore(ctx, read.MX, original); !errors.As(err, &conflict) {
				t.Errorf("restore with a stale RRset: got %v, want a *ConflictError", err)
			}
		})
	}
}

func nsupdate(t testing.TB, s *dnstest.Servers, cmds ...string) {
	t.Helper()
	host, port, _ := strings.Cut(s.Primary.Addr, ":")
	script := fmt.Sprintf("server %s %s\nzone %s\n%s\nsend\n", host, port, dnstest.Zone, strings.Join(cmds, "\n"))
	cmd := exec.Command("nsupdate", "-k", s.Key.File)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
}

func TestStoppedSecondary(t *testing.T) {
	ctx := context.Background()
	s := dnstest.StartBIND(t)
	z := newZone(t, s)
	stopped := s.Secondaries[1]
	stopped.Stop()
	target, err := z.Remove(ctx, original, "mx2.example.org.", 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = z.WaitFor(ctx, target, 2*time.Second, nil)
	var lag *dnsctl.LagError
	if !errors.As(err, &lag) {
		t.Fatalf("got %v, want a *LagError", err)
	}
	var lagging []string
	for _, v := range lag.Lagging {
		lagging = append(lagging, v.Server)
	}
	if diff := cmp.Diff([]string{stopped.Addr}, lagging); diff != "" {
		t.Errorf("lagging (-want +got)\n%s", diff)
	}
	if !strings.Contains(err.Error(), stopped.Addr) {
		t.Errorf("error %q does not name %s", err, stopped.Addr)
	}
}

func TestMinimum(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			s := setup.start(t)
			z := newZone(t, s)
			cur := original
			for _, step := range []struct {
				host    string
				min     int
				refused bool
			}{
				{"mx2.example.org.", 3, true},
				{"mx2.example.org.", 0, true},
				{"mx9.example.org.", 1, true},
				{"mx2.example.org.", 2, false},
				{"mx1.example.org.", 2, true},
				{"mx1.example.org.", 1, false},
				{"mx3.example.org.", 1, true},
			} {
				next, err := z.Remove(ctx, cur, step.host, step.min)
				var refused *dnsctl.RefusedError
				if got := errors.As(err, &refused); got != step.refused {
					t.Fatalf("remove %s keeping %d of %s: refused %v (%v), want %v", step.host, step.min, cur, got, err, step.refused)
				}
				if err == nil {
					cur = next
				}
			}
			if got := z.Read(ctx, z.Primary); !got.MX.Equal(original[2:]) {
				t.Errorf("primary shows %s, want %s", got.MX, original[2:])
			}
		})
	}
}
