// Package dnstest starts real authoritative DNS servers for tests: a BIND 9
// primary that notifies a BIND secondary and a Knot secondary (which follow
// it by IXFR), and a Knot primary. Every server runs unprivileged-style in
// the foreground, on a free loopback port, with its files in t.TempDir(). It
// is stopped by t.Cleanup, and its log goes to t.Log when the test failed.
//
// The zone is always Zone with the records in ZoneText: an SOA, an NS with
// glue, three MX records (mx1, mx2, mx3, preferences 10, 20, 30, TTL MXTTL)
// and A records for the hosts. Updates are allowed for MX records at the
// apex and TLSA records below it, signed with the key of the Servers
// value. StartBINDSigned serves the zone signed with DNSSEC.
//
// A test that cannot find named or knotd fails with the command that
// installs them; it never skips.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mxq/internal/servertest"
)

// Zone is the origin of the test zone.
const Zone = "example.org."

// MXTTL is the TTL of the test zone's MX records, in seconds. It is short so
// that waits for it take seconds.
const MXTTL = 2

// ZoneText is the zone file every primary loads.
const ZoneText = `$ORIGIN example.org.
$TTL 60
@	SOA	ns1.example.org. hostmaster.example.org. 1 3600 600 86400 2
@	NS	ns1.example.org.
@	2	MX	10 mx1.example.org.
@	2	MX	20 mx2.example.org.
@	2	MX	30 mx3.example.org.
ns1	A	127.0.0.1
mx1	A	127.0.0.11
mx2	A	127.0.0.12
mx3	A	127.0.0.13
`

// install is the command the failure message names when a server binary is
// missing.
const install = "apt-get install bind9 bind9-dnsutils knot knot-dnsutils"

// startTimeout bounds how long a server may take until it answers.
const startTimeout = 20 * time.Second

// Key is a TSIG key as written by tsig-keygen.
type Key struct {
	Name      string // as in the file, without a trailing dot
	Algorithm string // e.g. hmac-sha256
	Secret    string // base64
	File      string // path of the key file
}

// Server is one running name server.
type Server struct {
	Name string // e.g. "bind-primary"
	Addr string // 127.0.0.1:PORT, UDP and TCP

	t    testing.TB
	bin  string
	args []string
	dir  string
	id   string // answered to id.server CH TXT: proves the port is ours

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *servertest.Log
}

// Servers is one test setup: a primary that accepts signed updates and the
// secondaries that follow it.
type Servers struct {
	Key         Key
	Primary     *Server
	Secondaries []*Server
}

// All returns the primary and then the secondaries.
func (s *Servers) All() []*Server {
	return append([]*Server{s.Primary}, s.Secondaries...)
}

// Addrs returns the addresses of All.
func (s *Servers) Addrs() []string {
	var a []string
	for _, srv := range s.All() {
		a = append(a, srv.Addr)
	}
	return a
}

// Keygen runs tsig-keygen for a key called name in dir.
func Keygen(t testing.TB, dir, alg, name string) Key {
	t.Helper()
	bin := servertest.LookPath(t, "tsig-keygen", install)
	out, err := exec.Command(bin, "-a", alg, name).Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	m := regexp.MustCompile(`algorithm ([a-z0-9-]+);\s*secret "([^"]+)"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("tsig-keygen wrote something unexpected:\n%s", out)
	}
	k := Key{Name: name, Algorithm: string(m[1]), Secret: string(m[2]),
		File: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(k.File, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// errPortInUse says a server could not bind its port: the caller picks new
// ports and starts again.
var errPortInUse = errors.New("address in use")

// start runs the server and waits until it answers id.server with its own
// identity.
func (s *Server) start() error {
	s.mu.Lock()
	s.log = &servertest.Log{}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if s.answersID() {
			return nil
		}
		if inUse(s.log.String()) {
			s.Stop()
			return fmt.Errorf("%s on %s: %w", s.Name, s.Addr, errPortInUse)
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited: %s", s.Name, s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Stop()
	return fmt.Errorf("%s did not answer on %s within %v", s.Name, s.Addr, startTimeout)
}

func inUse(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address in use") || strings.Contains(l, "address already in use")
}

// answersID reports whether our server (not another process that took the
// port) answers id.server CH TXT over UDP and TCP.
func (s *Server) answersID() bool {
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("id.server.", dns.TypeTXT)
		m.Question[0].Qclass = dns.ClassCHAOS
		m.RecursionDesired = false
		c := dns.Client{Net: network, Timeout: 500 * time.Millisecond}
		r, _, err := c.Exchange(m, s.Addr)
		if err != nil || len(r.Answer) == 0 {
			return false
		}
		txt, ok := r.Answer[0].(*dns.TXT)
		if !ok || strings.Join(txt.Txt, "") != s.id {
			return false
		}
	}
	return true
}

// Stop kills the server by its pid and waits until it is gone. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Log returns what the server wrote so far.
func (s *Server) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// SOA asks the server for the zone's SOA with RD=0 and returns the serial
// if the answer is authoritative.
func (s *Server) SOA(ctx context.Context) (uint32, bool) {
	m := new(dns.Msg)
	m.SetQuestion(Zone, dns.TypeSOA)
	m.RecursionDesired = false
	c := dns.Client{Timeout: 500 * time.Millisecond}
	r, _, err := c.ExchangeContext(ctx, m, s.Addr)
	if err != nil || !r.Authoritative || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return 0, false
	}
	soa, ok := r.Answer[0].(*dns.SOA)
	if !ok {
		return 0, false
	}
	return soa.Serial, true
}

// waitZone waits until the server answers the zone's SOA authoritatively
// with a serial of at least min.
func (s *Server) waitZone(min uint32) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if serial, ok := s.SOA(ctx); ok && serial >= min {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s did not serve %s serial >= %d within %v", s.Name, s.Addr, Zone, min, startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DNSKEY returns the zone's DNSKEY RRset as the server answers it
// authoritatively (none when the zone is not signed).
func (s *Server) DNSKEY(ctx context.Context) ([]*dns.DNSKEY, error) {
	m := new(dns.Msg)
	m.SetQuestion(Zone, dns.TypeDNSKEY)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	c := dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, s.Addr)
	if err != nil {
		return nil, err
	}
	if !r.Authoritative || r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: DNSKEY: rcode %s, aa %v", s.Name, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	var keys []*dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// waitDNSKEY waits until the server serves the zone's DNSKEY.
func (s *Server) waitDNSKEY() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if keys, err := s.DNSKEY(ctx); err == nil && len(keys) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s did not serve %s DNSKEY within %v", s.Name, s.Addr, Zone, startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
