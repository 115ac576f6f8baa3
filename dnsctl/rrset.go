package dnsctl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// MX is one MX record of the zone's apex, as a server answered it.
type MX struct {
	Preference uint16 `json:"preference"`
	Exchange   string `json:"exchange"` // fully qualified, as the server spelt it
	TTL        uint32 `json:"ttl"`
}

func (m MX) String() string {
	return fmt.Sprintf("%d MX %d %s", m.TTL, m.Preference, m.Exchange)
}

// RRset is an MX RRset in a stable order (preference, then exchange, then
// TTL). Two RRsets are the same when they hold the same records with the
// same preference, exchange (byte for byte) and TTL, in any order.
type RRset []MX

// NewRRset returns the records sorted, without exact duplicates.
func NewRRset(recs ...MX) RRset {
	s := slices.Clone(RRset(recs))
	slices.SortFunc(s, func(a, b MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference),
			strings.Compare(a.Exchange, b.Exchange), cmp.Compare(a.TTL, b.TTL))
	})
	return slices.Compact(s)
}

// Equal reports whether s and o are the same set, byte for byte.
func (s RRset) Equal(o RRset) bool {
	return slices.Equal(NewRRset(s...), NewRRset(o...))
}

// Find returns the records whose exchange is host, compared as DNS names
// (case-insensitively, with or without the final dot).
func (s RRset) Find(host string) RRset {
	var out RRset
	for _, m := range s {
		if SameName(m.Exchange, host) {
			out = append(out, m)
		}
	}
	return out
}

// Without returns s minus every record whose exchange is host.
func (s RRset) Without(host string) RRset {
	var out RRset
	for _, m := range s {
		if !SameName(m.Exchange, host) {
			out = append(out, m)
		}
	}
	return out
}

func (s RRset) String() string {
	if len(s) == 0 {
		return "(no MX records)"
	}
	var parts []string
	for _, m := range NewRRset(s...) {
		parts = append(parts, m.String())
	}
	return strings.Join(parts, ", ")
}

// SameName reports whether a and b are the same DNS name.
func SameName(a, b string) bool {
	return dns.CanonicalName(a) == dns.CanonicalName(b)
}

// rrs returns fresh miekg/dns records for s, owned by zone. They are new on
// every call because Used, Remove and Insert change the RRs they are given.
func (s RRset) rrs(zone string) []dns.RR {
	var out []dns.RR
	for _, m := range s {
		out = append(out, &dns.MX{
			Hdr:        dns.RR_Header{Name: zone, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: m.TTL},
			Preference: m.Preference,
			Mx:         m.Exchange,
		})
	}
	return out
}

// serialAtLeast reports whether serial a is b or later in RFC 1982 serial
// number arithmetic (SOA serials wrap at 2^32).
func serialAtLeast(a, b uint32) bool {
	return a == b || int32(a-b) > 0
}
