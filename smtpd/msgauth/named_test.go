package msgauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mxq/internal/servertest"
)

// installNamed is what a test that cannot find named says to run.
const installNamed = "apt-get install bind9"

// namedStart bounds how long named may take until it serves its zones.
const namedStart = 20 * time.Second

// named is a BIND 9 authoritative server run by a test.
type named struct {
	Addr string // 127.0.0.1:PORT, UDP and TCP

	cmd  *exec.Cmd
	done chan struct{}
	log  *servertest.Log
}

// zoneSet is what a test serves: primary zones by origin (records without
// the SOA and NS, which startNamed adds), and origins served as secondaries
// of a primary where nothing listens. Such a zone never loads, so named
// answers SERVFAIL for every name in it: the "zone whose only server is
// down" of a real deployment, seen through an authoritative server.
type zoneSet struct {
	primary map[string][]string
	broken  []string
}

// startNamed runs `named -g` on a free loopback port with its files in
// t.TempDir() (directory, pid-file none, session-keyfile none, listen-on
// the port, no controls), and returns once it answers the SOA
// of every primary zone authoritatively. t.Cleanup stops it by pid and
// sends its log to t.Log when the test failed. Without named the test
// fails and names the package to install.
func startNamed(t testing.TB, zones zoneSet) *named {
	t.Helper()
	bin := servertest.LookPath(t, "named", installNamed)
	base := t.TempDir()
	for attempt := range 5 {
		dir := filepath.Join(base, strconv.Itoa(attempt))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		port, dead := servertest.FreePort(t), servertest.FreePort(t)
		conf := writeNamedFiles(t, dir, port, dead, zones)
		n := &named{Addr: fmt.Sprintf("127.0.0.1:%d", port), log: &servertest.Log{},
			done: make(chan struct{})}
		n.cmd = exec.Command(bin, "-g", "-n", "1", "-c", conf)
		n.cmd.Dir = dir
		n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
		if err := n.cmd.Start(); err != nil {
			t.Fatalf("start named: %v", err)
		}
		go func() { n.cmd.Wait(); close(n.done) }()
		t.Cleanup(func() {
			n.stop()
			if t.Failed() {
				t.Logf("named log (%s):\n%s", n.Addr, n.log.String())
			}
		})
		err := n.waitReady(zones)
		if err == nil {
			return n
		}
		n.stop()
		if !errors.Is(err, errPortInUse) {
			t.Fatalf("%v\n%s", err, n.log.String())
		}
		t.Logf("port %d taken, starting again", port)
	}
	t.Fatal("named: no free port after 5 attempts")
	return nil
}

var errPortInUse = errors.New("address in use")

// waitReady polls each primary zone's SOA with RD=0 until all answer
// authoritatively, named exits, or namedStart passes.
func (n *named) waitReady(zones zoneSet) error {
	deadline := time.Now().Add(namedStart)
	for {
		if n.servesAll(zones) {
			return nil
		}
		if strings.Contains(n.log.String(), "address in use") {
			return fmt.Errorf("named on %s: %w", n.Addr, errPortInUse)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("named on %s did not serve its zones within %v", n.Addr, namedStart)
		}
		select {
		case <-n.done:
			return fmt.Errorf("named exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *named) servesAll(zones zoneSet) bool {
	for origin := range zones.primary {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(origin), dns.TypeSOA)
		m.RecursionDesired = false
		c := dns.Client{Timeout: 500 * time.Millisecond}
		r, _, err := c.Exchange(m, n.Addr)
		if err != nil || !r.Authoritative || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return false
		}
	}
	return true
}

// stop kills named by its pid and waits until it is gone.
func (n *named) stop() {
	if n.cmd.Process != nil {
		n.cmd.Process.Kill()
		<-n.done
	}
}

// writeNamedFiles writes named.conf and the zone files into dir and returns
// the configuration's path. The broken zones' primary is 127.0.0.1:dead.
func writeNamedFiles(t testing.TB, dir string, port, dead int, zones zoneSet) string {
	t.Helper()
	var conf strings.Builder
	fmt.Fprintf(&conf, `options {
	directory %q;
	pid-file none;
	session-keyfile none;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify explicit;
	notify-delay 0;
};
controls { };
logging { category default { default_stderr; }; };
`, dir, port)
	origins := make([]string, 0, len(zones.primary))
	for o := range zones.primary {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	for i, origin := range origins {
		file := fmt.Sprintf("primary%d.db", i)
		servertest.WriteFile(t, dir, file, zoneText(origin, zones.primary[origin]))
		fmt.Fprintf(&conf, "zone %q { type primary; file %q; };\n", origin, file)
	}
	for i, origin := range zones.broken {
		fmt.Fprintf(&conf, "zone %q { type secondary; primaries { 127.0.0.1 port %d; }; file \"broken%d.bk\"; };\n",
			origin, dead, i)
	}
	return servertest.WriteFile(t, dir, "named.conf", conf.String())
}

func zoneText(origin string, records []string) string {
	return fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@ SOA ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60\n@ NS ns.%[1]s.\nns A 127.0.0.1\n%s\n",
		origin, strings.Join(records, "\n"))
}

// txt quotes s as the character-strings of one TXT record, split every
// 255 bytes (RFC 1035 §3.3.14) as a DKIM key needs.
func txt(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, strconv.Quote(s[:255]))
		s = s[255:]
	}
	return strings.Join(append(parts, strconv.Quote(s)), " ")
}

// query is a bare query to addr with RD=0, the reference the benchmark
// measures Check against.
func query(ctx context.Context, addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := dns.Client{}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	return r, err
}
