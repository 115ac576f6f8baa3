package dnsctl

import (
	"context"
	"fmt"
	"net"

	"github.com/miekg/dns"
)

// PrimaryFromSOA asks the system's resolver for zone's SOA and returns its
// MNAME at port 53: the default primary when none is configured.
func PrimaryFromSOA(ctx context.Context, zone string) (string, error) {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(conf.Servers) == 0 {
		return "", fmt.Errorf("find the primary of %s: no resolver in /etc/resolv.conf: %v", zone, err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	c := dns.Client{Net: "tcp"}
	r, _, err := c.ExchangeContext(ctx, m, net.JoinHostPort(conf.Servers[0], conf.Port))
	if err != nil {
		return "", fmt.Errorf("find the primary of %s: %w", zone, err)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return net.JoinHostPort(trimDot(soa.Ns), "53"), nil
		}
	}
	return "", fmt.Errorf("find the primary of %s: no SOA in the answer (%s); set -server", zone, dns.RcodeToString[r.Rcode])
}

// NSAddrs returns every address of every name server in the zone's NS
// RRset, as the primary lists it, at port 53.
func (z *Zone) NSAddrs(ctx context.Context) ([]string, error) {
	r, err := z.query(ctx, z.Primary, dns.TypeNS)
	if err != nil {
		return nil, fmt.Errorf("read NS of %s: %w", z.Name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		addrs, err := z.HostAddrs(ctx, ns.Ns)
		if err != nil {
			return nil, fmt.Errorf("addresses of name server %s: %w", ns.Ns, err)
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a, "53"))
		}
	}
	return out, nil
}
