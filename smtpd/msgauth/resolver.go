package msgauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// resolvConf is where the system's resolvers are read from when no server
// is configured.
const resolvConf = "/etc/resolv.conf"

// ednsSize is the UDP payload size we advertise: the DNS Flag Day 2020
// value, which avoids IP fragmentation. Larger answers come over TCP.
const ednsSize = 1232

// Resolver does the DNS lookups of every check. It sends recursive queries
// to its servers, tries the next server when one fails, and falls back to
// TCP for truncated answers.
//
// Its errors are always *net.DNSError, the type the SPF, DKIM and DMARC
// libraries inspect: IsNotFound for NXDOMAIN and NODATA ("no such record",
// a permanent answer), IsTemporary or IsTimeout for SERVFAIL, REFUSED, any
// other rcode, a network error or a timeout (the answer may differ later).
type Resolver struct {
	servers []string
	timeout time.Duration

	// queries counts the queries sent, for the benchmark's queries/op.
	queries atomic.Int64

	cache answerCache
}

// NewResolver returns a Resolver that asks server ("host:port"; the port
// defaults to 53) or, when server is empty, the nameservers of
// /etc/resolv.conf. Each query is bounded by timeout.
func NewResolver(server string, timeout time.Duration) (*Resolver, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("resolver timeout %v: must be positive", timeout)
	}
	r := &Resolver{timeout: timeout}
	if server != "" {
		addr, err := hostPort(server, "53")
		if err != nil {
			return nil, fmt.Errorf("resolver %q: %w", server, err)
		}
		r.servers = []string{addr}
		return r, nil
	}
	conf, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", resolvConf, err)
	}
	for _, s := range conf.Servers {
		r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
	}
	if len(r.servers) == 0 {
		return nil, fmt.Errorf("read %s: no nameserver", resolvConf)
	}
	return r, nil
}

// hostPort accepts "host:port", "[v6]:port", a bare IPv4 or IPv6 address, or
// a bare host name, and adds port where none is given.
func hostPort(s, port string) (string, error) {
	if host, p, err := net.SplitHostPort(s); err == nil {
		if host == "" || p == "" {
			return "", errors.New("empty host or port")
		}
		return s, nil
	}
	if strings.ContainsAny(s, "[]") {
		return "", errors.New("malformed address")
	}
	return net.JoinHostPort(s, port), nil
}

// Servers returns the addresses the resolver asks, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// query asks for name's records of type qtype and returns those of the
// answer that belong to name or to the CNAME chain starting at it.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 {
		// Nothing can be published under a name DNS cannot carry.
		return nil, &net.DNSError{Err: "invalid domain name", Name: name, IsNotFound: true}
	}
	key := cacheKey{qtype: qtype, name: strings.ToLower(fqdn)}
	if rrs, err, ok := r.cache.get(key); ok {
		if err != nil {
			return nil, err
		}
		return rrs, nil
	}
	var last *net.DNSError
	for _, server := range r.servers {
		rrs, err := r.queryServer(ctx, fqdn, qtype, server)
		switch {
		case err == nil:
			r.cache.put(key, rrs, nil)
			return rrs, nil
		case err.IsNotFound:
			r.cache.put(key, nil, err)
			return nil, err
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if last != nil && ctx.Err() == nil {
		// Every server failed on its own, not because our caller gave
		// up: remember that for a few seconds.
		r.cache.put(key, nil, last)
	}
	return nil, last
}

// queryServer returns a nil error or a *net.DNSError.
func (r *Resolver) queryServer(ctx context.Context, fqdn string, qtype uint16, server string) ([]dns.RR, *net.DNSError) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)

	fail := func(err string) *net.DNSError {
		return &net.DNSError{Err: err, Name: fqdn, Server: server, IsTemporary: true}
	}
	reply, err := r.exchange(ctx, m, server, "udp")
	if err == nil && reply.Truncated {
		reply, err = r.exchange(ctx, m, server, "tcp")
	}
	if err != nil {
		var ne net.Error
		timeout := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
		return nil, &net.DNSError{Err: err.Error(), Name: fqdn, Server: server,
			IsTimeout: timeout, IsTemporary: true}
	}
	if len(reply.Question) != 1 || !strings.EqualFold(reply.Question[0].Name, fqdn) ||
		reply.Question[0].Qtype != qtype {
		return nil, fail("answer to another question")
	}
	switch reply.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, &net.DNSError{Err: "no such host", Name: fqdn, Server: server, IsNotFound: true}
	default:
		// SERVFAIL, REFUSED, FORMERR, NOTIMP and the rest: the server could
		// not answer, which says nothing about the record.
		return nil, fail("server answered " + dns.RcodeToString[reply.Rcode])
	}
	rrs := answerFor(reply.Answer, fqdn, qtype)
	if len(rrs) == 0 {
		return nil, &net.DNSError{Err: "no such record", Name: fqdn, Server: server, IsNotFound: true}
	}
	return rrs, nil
}

func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server, network string) (*dns.Msg, error) {
	r.queries.Add(1)
	// Without Timeout, miekg/dns bounds dial, write and read by its own
	// 2 s default, whatever ctx allows: a configured timeout above 2 s
	// would never be reached.
	c := &dns.Client{Net: network, UDPSize: ednsSize, Timeout: r.timeout}
	reply, _, err := c.ExchangeContext(ctx, m, server)
	return reply, err
}

// answerFor follows the CNAME chain from name through the answer section
// (at most 8 links, RFC 1034 §3.6.2 leaves the bound to the resolver) and
// returns the records of type qtype at its end.
func answerFor(answer []dns.RR, name string, qtype uint16) []dns.RR {
	for range 8 {
		var rrs []dns.RR
		var cname string
		for _, rr := range answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			switch {
			case h.Rrtype == qtype:
				rrs = append(rrs, rr)
			case h.Rrtype == dns.TypeCNAME:
				cname = rr.(*dns.CNAME).Target
			}
		}
		if len(rrs) > 0 || cname == "" {
			return rrs
		}
		name = cname
	}
	return nil
}

// LookupTXT returns the TXT records of name, the strings of each record
// joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	txts := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		txts = append(txts, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return txts, nil
}

// LookupMX returns the MX records of name.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	mxs := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return mxs, nil
}

// LookupIPAddr returns the A and AAAA records of host, asked in parallel.
// An answer to either is a success; a temporary error in either, when
// neither answered, is temporary.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var (
		wg   sync.WaitGroup
		rrs  [2][]dns.RR
		errs [2]error
	)
	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() { rrs[i], errs[i] = r.query(ctx, host, qtype) })
	}
	wg.Wait()
	var addrs []net.IPAddr
	for _, set := range rrs {
		for _, rr := range set {
			switch rr := rr.(type) {
			case *dns.A:
				addrs = append(addrs, net.IPAddr{IP: rr.A})
			case *dns.AAAA:
				addrs = append(addrs, net.IPAddr{IP: rr.AAAA})
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, err := range errs {
		if isTemporary(err) {
			return nil, err
		}
	}
	return nil, errs[0]
}

// LookupAddr returns the PTR names of the address addr.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "invalid address", Name: addr, IsNotFound: true}
	}
	arpa, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, &net.DNSError{Err: "invalid address", Name: addr, IsNotFound: true}
	}
	rrs, err := r.query(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		names = append(names, rr.(*dns.PTR).Ptr)
	}
	return names, nil
}

// isTemporary reports whether err is a DNS error that may go away: a
// timeout, SERVFAIL or the like.
func isTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}
