package msgauth

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// dnsOutcome is what a lookup answered, in a form cmp can compare.
type dnsOutcome struct {
	Answers   []string
	NotFound  bool
	Temporary bool
	Timeout   bool
}

func outcome(answers []string, err error) dnsOutcome {
	sort.Strings(answers)
	o := dnsOutcome{Answers: answers}
	var de *net.DNSError
	if err != nil && !errors.As(err, &de) {
		o.Answers = []string{"not a *net.DNSError: " + err.Error()}
	}
	if de != nil {
		o.NotFound, o.Temporary, o.Timeout = de.IsNotFound, de.IsTemporary, de.IsTimeout
	}
	return o
}

// TestResolver checks, against a real named, that the Resolver tells a
// record from "no such record" (NXDOMAIN, NODATA) from a temporary failure
// (SERVFAIL of an unloaded zone, REFUSED for a zone it does not serve).
func TestResolver(t *testing.T) {
	e := newEnv(t, Defaults())
	r := e.checker.resolver
	ctx := context.Background()
	txts := func(name string) func() dnsOutcome {
		return func() dnsOutcome { return outcome(r.LookupTXT(ctx, name)) }
	}
	ips := func(name string) func() dnsOutcome {
		return func() dnsOutcome {
			addrs, err := r.LookupIPAddr(ctx, name)
			var s []string
			for _, a := range addrs {
				s = append(s, a.IP.String())
			}
			return outcome(s, err)
		}
	}
	var big []string
	for i := range 8 {
		big = append(big, strings.Repeat(string(rune('a'+i)), 250))
	}
	tests := []struct {
		name   string
		lookup func() dnsOutcome
		want   dnsOutcome
	}{
		{"txt", txts("fail.example.test"), dnsOutcome{Answers: []string{"v=spf1 ip4:192.0.2.1 -all"}}},
		{"txt strings joined", txts("split.example.test"), dnsOutcome{Answers: []string{"v=spf1 ip4:127.0.0.2 -all"}}},
		{"truncated over udp, whole over tcp", txts("big.example.test"), dnsOutcome{Answers: big}},
		{"nxdomain", txts("nx.example.test"), dnsOutcome{NotFound: true}},
		{"nodata", txts("liar.example.test"), dnsOutcome{NotFound: true}},
		{"servfail", txts("broken.test"), dnsOutcome{Temporary: true}},
		{"refused", txts("example.com"), dnsOutcome{Temporary: true}},
		{"invalid name", txts(strings.Repeat("a", 64) + ".example.test"), dnsOutcome{NotFound: true}},
		{"a", ips("mail.example.test"), dnsOutcome{Answers: []string{"127.0.0.2"}}},
		{"cname followed", ips("cname.example.test"), dnsOutcome{Answers: []string{"127.0.0.2"}}},
		{"a nxdomain", ips("nx.example.test"), dnsOutcome{NotFound: true}},
		{"a servfail", ips("host.broken.test"), dnsOutcome{Temporary: true}},
		{"mx nodata", func() dnsOutcome {
			mxs, err := r.LookupMX(ctx, "example.test")
			return outcome(make([]string, len(mxs)), err)
		}, dnsOutcome{Answers: []string{}, NotFound: true}},
		{"ptr", func() dnsOutcome { return outcome(r.LookupAddr(ctx, "127.0.0.7")) },
			dnsOutcome{Answers: []string{"mail7.example.test.", "nx.example.test."}}},
		{"ptr none", func() dnsOutcome { return outcome(r.LookupAddr(ctx, "127.0.0.4")) },
			dnsOutcome{NotFound: true}},
		{"ptr servfail", func() dnsOutcome { return outcome(r.LookupAddr(ctx, "127.0.0.6")) },
			dnsOutcome{Temporary: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.lookup()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestResolverTimeout points a Resolver at a UDP socket that never
// answers: the lookup is a temporary timeout, bounded by the timeout.
func TestResolverTimeout(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	r, err := NewResolver(silent.LocalAddr().String(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := outcome(r.LookupTXT(context.Background(), "example.test"))
	if diff := cmp.Diff(dnsOutcome{Temporary: true, Timeout: true}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestNewResolver(t *testing.T) {
	tests := []struct {
		server  string
		timeout time.Duration
		want    []string
		err     bool
	}{
		{"127.0.0.1:5353", time.Second, []string{"127.0.0.1:5353"}, false},
		{"127.0.0.1", time.Second, []string{"127.0.0.1:53"}, false},
		{"::1", time.Second, []string{"[::1]:53"}, false},
		{"[::1]:5353", time.Second, []string{"[::1]:5353"}, false},
		{"dns.example.test", time.Second, []string{"dns.example.test:53"}, false},
		{"[::1", time.Second, nil, true},
		{":53", time.Second, nil, true},
		{"127.0.0.1:53", 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			r, err := NewResolver(tt.server, tt.timeout)
			if (err != nil) != tt.err {
				t.Fatalf("NewResolver(%q, %v) error = %v, want error: %v", tt.server, tt.timeout, err, tt.err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, r.Servers()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestNewResolverSystem reads /etc/resolv.conf, which every test machine
// has, and uses its servers with their port.
func TestNewResolverSystem(t *testing.T) {
	r, err := NewResolver("", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Servers() {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			t.Errorf("server %q has no port", s)
		}
	}
}

// TestResolverFallbacks shows, by the queries sent, that a truncated UDP
// answer is asked again over TCP, and that a server that does not answer
// is followed by the next one.
func TestResolverFallbacks(t *testing.T) {
	e := newEnv(t, Defaults())
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	tests := []struct {
		name    string
		servers []string
		lookup  string
		want    int // answers
		queries int64
	}{
		{"small answer over udp", []string{e.dns.Addr}, "fail.example.test", 1, 1},
		{"truncated answer over tcp", []string{e.dns.Addr}, "big.example.test", 8, 2},
		{"silent server then named", []string{silent.LocalAddr().String(), e.dns.Addr}, "fail.example.test", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{servers: tt.servers, timeout: 200 * time.Millisecond}
			txts, err := r.LookupTXT(context.Background(), tt.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if len(txts) != tt.want || r.queries.Load() != tt.queries {
				t.Errorf("got %d answers in %d queries, want %d in %d", len(txts), r.queries.Load(), tt.want, tt.queries)
			}
		})
	}
}

// slowDNS answers every query with one TXT record, delay after it
// arrived: a server far away or under load.
func slowDNS(t *testing.T, delay time.Duration, txt string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			m := new(dns.Msg)
			m.SetReply(q)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name,
				Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{txt}}}
			out, err := m.Pack()
			if err != nil {
				continue
			}
			time.AfterFunc(delay, func() { pc.WriteTo(out, from) })
		}
	}()
	return pc.LocalAddr().String()
}

// TestResolverTimeoutAbove2s checks that the configured timeout is the one
// that applies, also above the 2 s miekg/dns uses when it is given none:
// a server that answers after 2.5 s is heard with 4 s and not with 1 s.
func TestResolverTimeoutAbove2s(t *testing.T) {
	addr := slowDNS(t, 2500*time.Millisecond, "v=spf1 -all")
	tests := []struct {
		timeout time.Duration
		want    dnsOutcome
	}{
		{4 * time.Second, dnsOutcome{Answers: []string{"v=spf1 -all"}}},
		{time.Second, dnsOutcome{Temporary: true, Timeout: true}},
	}
	for _, tt := range tests {
		t.Run(tt.timeout.String(), func(t *testing.T) {
			t.Parallel()
			r, err := NewResolver(addr, tt.timeout)
			if err != nil {
				t.Fatal(err)
			}
			got := outcome(r.LookupTXT(context.Background(), "slow.example.test"))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
