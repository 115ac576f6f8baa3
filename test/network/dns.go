package network

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Zone is the test zone: the list domain, whose apex MX RRset names the
// MX hosts, and what a sender needs.
type Zone struct {
	Name    string // "lists.example.org", the list domain
	MXTTL   int
	KeyName string
	KeyFile string
	Secret  string
}

// writeKey creates the TSIG key both servers and dnsctl read.
func writeKey(t testing.TB, dir string, z *Zone) {
	t.Helper()
	out, err := exec.Command("tsig-keygen", "-a", "hmac-sha256", z.KeyName).Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v (apt-get install bind9)", err)
	}
	z.KeyFile = filepath.Join(dir, "update.key")
	if err := os.WriteFile(z.KeyFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret \""); ok {
			z.Secret = strings.TrimSuffix(s, "\";")
		}
	}
	if z.Secret == "" {
		t.Fatalf("no secret in tsig-keygen output:\n%s", out)
	}
}

// zoneFile is the primary's zone: an MX record for each of mx1, mx2 and
// mx3 that hosts gives an address.
func zoneFile(z *Zone, hosts map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s.\n$TTL 60\n", z.Name)
	fmt.Fprintf(&b, "@ SOA dns1 hostmaster 1 60 10 600 5\n@ NS dns1\n@ NS dns2\n")
	for _, n := range []string{"dns1", "dns2", "mx1", "mx2", "mx3", "sender", "lists"} {
		if ip, ok := hosts[n]; ok {
			fmt.Fprintf(&b, "%s A %s\n", n, ip)
		}
	}
	for _, mx := range []string{"mx1", "mx2", "mx3"} {
		if _, ok := hosts[mx]; ok {
			fmt.Fprintf(&b, "@ %d MX 10 %s.%s.\n", z.MXTTL, mx, z.Name)
		}
	}
	fmt.Fprintf(&b, "sender TXT \"v=spf1 ip4:%s -all\"\n", hosts["sender"])
	fmt.Fprintf(&b, "_dmarc.sender TXT \"v=DMARC1; p=none\"\n")
	return b.String()
}

// StartBIND starts the primary on h. It notifies secondary (the Knot on
// dns2) and accepts TSIG-signed MX updates for the list domain, and TLSA
// updates below it.
func StartBIND(t testing.TB, h *Host, z *Zone, hosts map[string]string, secondary string) *Proc {
	t.Helper()
	return startBIND(t, h, z, hosts, secondary, "")
}

// StartBINDSigned is StartBIND with the zone signed by BIND
// (dnssec-policy default: one ECDSA P-256 key, NSEC); it returns once the
// primary serves the zone's DNSKEY. TLSA updates are allowed too.
func StartBINDSigned(t testing.TB, h *Host, z *Zone, hosts map[string]string, secondary string) *Proc {
	t.Helper()
	p := startBIND(t, h, z, hosts, secondary, "dnssec-policy default;\n\tkey-directory \"keys\";")
	waitUntil(t, 20*time.Second, "a DNSKEY on "+h.IP, func() bool { return len(DNSKEYs(h.IP+":53", z.Name)) > 0 })
	return p
}

// DNSKEYs returns the zone's DNSKEY records as addr answers them (none
// on error).
func DNSKEYs(addr, zone string) []*dns.DNSKEY {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeDNSKEY)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	c := dns.Client{Net: "tcp", Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil
	}
	var keys []*dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

func startBIND(t testing.TB, h *Host, z *Zone, hosts map[string]string, secondary, signing string) *Proc {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, "bind")
	os.MkdirAll(filepath.Join(dir, "keys"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(zoneFile(z, hosts)), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`include %q;
options {
	directory %q;
	pid-file none;
	session-keyfile none;
	listen-on port 53 { %s; };
	listen-on-v6 { none; };
	recursion no;
	notify explicit;
	notify-delay 0;
	also-notify { %s port 53; };
	allow-transfer { %s; };
};
controls { };
zone %q {
	type primary;
	file "zone.db";
	update-policy { grant %s name %s. MX; grant %s subdomain %s. TLSA; };
	%s
};
`, z.KeyFile, dir, h.IP, secondary, secondary, z.Name, z.KeyName, z.Name, z.KeyName, z.Name, signing)
	path := filepath.Join(dir, "named.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	if out, err := exec.Command("named-checkconf", path).CombinedOutput(); err != nil {
		t.Fatalf("named-checkconf: %v\n%s", err, out)
	}
	p := h.Start("named", "named", "-g", "-c", path)
	waitSOA(t, p, h.IP+":53", z.Name)
	return p
}

// StartKnot starts a Knot secondary on h, fed by primary.
func StartKnot(t testing.TB, h *Host, z *Zone, primary string) *Proc {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, "knot")
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	os.MkdirAll(filepath.Join(dir, "zones"), 0o755)
	conf := fmt.Sprintf(`server:
    listen: %s@53
    rundir: %q
database:
    storage: %q
remote:
  - id: primary
    address: %s@53
acl:
  - id: notify_from_primary
    address: %s
    action: notify
template:
  - id: default
    storage: %q
zone:
  - domain: %s
    master: primary
    acl: notify_from_primary
`, h.IP, dir, filepath.Join(dir, "db"), primary, primary, filepath.Join(dir, "zones"), z.Name)
	path := filepath.Join(dir, "knot.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	if out, err := exec.Command("knotc", "-c", path, "conf-check").CombinedOutput(); err != nil {
		t.Fatalf("knotc conf-check: %v\n%s", err, out)
	}
	return h.Start("knotd", "knotd", "-c", path)
}

// waitSOA waits until addr answers an SOA query for zone with AA.
func waitSOA(t testing.TB, p *Proc, addr, zone string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := querySOA(addr, zone); err == nil {
			return
		} else if time.Now().After(deadline) || (p != nil && p.Exited()) {
			t.Fatalf("%s does not answer SOA %s: %v", addr, zone, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func querySOA(addr, zone string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
		return fmt.Errorf("rcode %s, aa %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
	}
	return nil
}

// MXSet returns the MX exchanges addr serves for name, sorted.
func MXSet(addr, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeMX)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, mx.String())
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(t testing.TB, p *Proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || (p != nil && p.Exited()) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartUnbound starts a validating resolver on h for the hosts of the
// lab: it asks primary for zone (a stub zone: the lab has no root) and
// validates its answers with the zone's own DNSKEY as the trust anchor,
// as a resolver on the Internet would through the DS at the parent.
// Lines of extra go into its server: clause.
func StartUnbound(t testing.TB, h *Host, zone, primary string, extra ...string) *Proc {
	t.Helper()
	if _, err := exec.LookPath("unbound"); err != nil {
		t.Fatal("unbound not found: apt-get install unbound")
	}
	dir := filepath.Join(h.lab.Dir, "unbound")
	os.MkdirAll(dir, 0o755)
	var anchor strings.Builder
	for _, k := range DNSKEYs(primary+":53", zone) {
		if k.Flags&dns.SEP != 0 {
			anchor.WriteString(k.String() + "\n")
		}
	}
	if anchor.Len() == 0 {
		t.Fatalf("no DNSKEY with the SEP flag for %s on %s", zone, primary)
	}
	os.WriteFile(filepath.Join(dir, "anchor"), []byte(anchor.String()), 0o644)
	conf := fmt.Sprintf(`server:
	interface: %s
	port: 53
	access-control: %s0/24 allow
	do-daemonize: no
	username: ""
	chroot: ""
	directory: %q
	pidfile: ""
	use-syslog: no
	logfile: ""
	verbosity: 1
	val-log-level: 2
	do-ip6: no
	do-not-query-localhost: no
	qname-minimisation: no
	module-config: "validator iterator"
	trust-anchor-file: %q
%s
stub-zone:
	name: %q
	stub-addr: %s
remote-control:
	control-enable: no
`, h.IP, h.lab.subnet, dir, filepath.Join(dir, "anchor"), "\t"+strings.Join(extra, "\n\t"), zone, primary)
	path := filepath.Join(dir, "unbound.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	if out, err := exec.Command("unbound-checkconf", path).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	p := h.Start("unbound", "unbound", "-d", "-c", path)
	waitUntil(t, 20*time.Second, "a validated answer from unbound on "+h.IP, func() bool { return Validated(h.IP+":53", zone) == nil })
	return p
}

// Validated asks the resolver at addr for zone's SOA and checks that the
// answer is validated (AD set, RFC 4035 §3.2.3).
func Validated(addr, zone string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	m.SetEdns0(1232, true)
	m.AuthenticatedData = true
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData {
		return fmt.Errorf("rcode %s, ad %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
	}
	return nil
}
