package msgauth

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// maxPTRNames bounds the forward lookups of iprev, as RFC 7208 §5.5 does
// for the ptr mechanism: a reverse zone may list any number of names.
const maxPTRNames = 10

// checkIPRev runs the "iprev" check of RFC 8601 §3: the PTR names of ip,
// then the A (or AAAA) records of each; pass when one of them is ip. No
// PTR records is permerror, PTR names that do not lead back to ip are
// fail, and a temporary error with no pass is temperror. It returns the
// result and the confirmed name.
func (c *Checker) checkIPRev(ctx context.Context, ip netip.Addr) (string, string) {
	if !ip.IsValid() {
		return PermError, ""
	}
	ip = ip.Unmap()
	names, err := c.resolver.LookupAddr(ctx, ip.String())
	switch {
	case isTemporary(err):
		return TempError, ""
	case err != nil:
		return PermError, ""
	}
	if len(names) > maxPTRNames {
		names = names[:maxPTRNames]
	}
	qtype := dns.TypeA
	if ip.Is6() {
		qtype = dns.TypeAAAA
	}
	temp := false
	for _, name := range names {
		rrs, err := c.resolver.query(ctx, name, qtype)
		if isTemporary(err) {
			temp = true
			continue
		}
		for _, rr := range rrs {
			var got netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				got, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				got, _ = netip.AddrFromSlice(rr.AAAA)
			}
			if got == ip {
				return Pass, strings.TrimSuffix(strings.ToLower(name), ".")
			}
		}
	}
	if temp {
		return TempError, ""
	}
	return Fail, ""
}
