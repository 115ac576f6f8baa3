package dnstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"mxq/internal/servertest"
)

// attempts is how often a setup is started again with new ports when one
// of them was taken between choosing it and binding it.
const attempts = 5

// StartBIND starts a BIND primary for Zone that notifies a BIND secondary
// and a Knot secondary; both follow it by IXFR. It returns once every server
// answers the zone's SOA authoritatively.
//
// The Knot secondary starts first, so that the primary's NOTIFY at load time
// reaches it. The BIND secondary starts after the primary: BIND 9.18 whose
// first refresh met a closed port keeps that refresh "in progress" for about
// 55 s and only queues the NOTIFY that arrives meanwhile (seen in this
// helper). Started after the primary, its own refresh at load time fetches
// the zone at once.
func StartBIND(t testing.TB) *Servers {
	t.Helper()
	return startBIND(t, false)
}

// StartBINDSigned is StartBIND with the zone signed by the primary
// (dnssec-policy default); it returns once every server serves the zone's
// DNSKEY.
func StartBINDSigned(t testing.TB) *Servers {
	t.Helper()
	return startBIND(t, true)
}

func startBIND(t testing.TB, signed bool) *Servers {
	t.Helper()
	return retry(t, func(root string, key Key) (*Servers, error) {
		pp, bp, kp := servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
		bsec := newServer(t, root, "bind-secondary", "named", bp,
			func(dir string) string { return bindSecondary(dir, bp, "bind-secondary", pp) })
		ksec := newServer(t, root, "knot-secondary", "knotd", kp,
			func(dir string) string { return knotSecondary(dir, kp, "knot-secondary", pp) })
		prim := newServer(t, root, "bind-primary", "named", pp,
			func(dir string) string { return bindPrimary(dir, pp, "bind-primary", key, []int{bp, kp}, signed) })
		servertest.WriteFile(t, prim.dir, "zone.db", ZoneText)
		if signed {
			if err := os.Mkdir(filepath.Join(prim.dir, "keys"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		s := &Servers{Key: key, Primary: prim, Secondaries: []*Server{bsec, ksec}}
		if err := startAll(s, []*Server{ksec}, []*Server{bsec}); err != nil || !signed {
			return s, err
		}
		for _, srv := range s.All() {
			if err := srv.waitDNSKEY(); err != nil {
				return s, err
			}
		}
		return s, nil
	})
}

// StartKnot starts a Knot primary for Zone, alone.
func StartKnot(t testing.TB) *Servers {
	t.Helper()
	return retry(t, func(root string, key Key) (*Servers, error) {
		pp := servertest.FreePort(t)
		prim := newServer(t, root, "knot-primary", "knotd", pp,
			func(dir string) string { return knotPrimary(dir, pp, "knot-primary", key) })
		servertest.WriteFile(t, prim.dir, "zone.db", ZoneText)
		s := &Servers{Key: key, Primary: prim}
		return s, startAll(s, nil, nil)
	})
}

func retry(t testing.TB, setup func(root string, key Key) (*Servers, error)) *Servers {
	t.Helper()
	servertest.LookPath(t, "named", install)
	servertest.LookPath(t, "knotd", install)
	base := t.TempDir()
	key := Keygen(t, base, "hmac-sha256", "mxq-test")
	for i := range attempts {
		root := filepath.Join(base, fmt.Sprint("try", i))
		if err := os.Mkdir(root, 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := setup(root, key)
		if err == nil {
			return s
		}
		for _, srv := range s.All() {
			srv.Stop()
		}
		if !errors.Is(err, errPortInUse) {
			t.Fatal(err)
		}
		t.Logf("port taken, starting again: %v", err)
	}
	t.Fatalf("no free ports after %d attempts", attempts)
	return nil
}

// newServer writes the server's configuration and registers its stop and
// log with t.Cleanup; start runs it.
func newServer(t testing.TB, root, name, bin string, port int, conf func(dir string) string) *Server {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := servertest.WriteFile(t, dir, "server.conf", conf(dir))
	s := &Server{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t,
		bin: servertest.LookPath(t, bin, install), dir: dir, id: name}
	switch bin {
	case "named":
		s.args = []string{"-g", "-n", "1", "-c", file}
	default:
		s.args = []string{"-c", file}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("log of %s (%s):\n%s", s.Name, s.Addr, s.Log())
		}
	})
	return s
}

// startAll starts the secondaries in before, then the primary, then the
// secondaries in after, and waits until all serve the zone.
func startAll(s *Servers, before, after []*Server) error {
	for _, srv := range before {
		if err := srv.start(); err != nil {
			return err
		}
	}
	if err := s.Primary.start(); err != nil {
		return err
	}
	for _, srv := range after {
		if err := srv.start(); err != nil {
			return err
		}
	}
	if err := s.Primary.waitZone(1); err != nil {
		return err
	}
	for _, srv := range s.Secondaries {
		if err := srv.waitZone(1); err != nil {
			return err
		}
	}
	return nil
}

// Start runs a stopped server again with the same configuration and port,
// and waits until it answers.
func (s *Server) Start() error {
	err := s.start()
	if err != nil {
		return err
	}
	return s.waitZone(1)
}
