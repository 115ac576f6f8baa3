package dnsctl

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// TLSA is one TLSA record (RFC 6698 §2.1) of an MX host, as a server
// answered it.
type TLSA struct {
	Usage        uint8  `json:"usage"`
	Selector     uint8  `json:"selector"`
	MatchingType uint8  `json:"matching_type"`
	Data         string `json:"data"` // lower-case hex
	TTL          uint32 `json:"ttl"`
}

// DANE-EE SPKI SHA-256, the only form dnsctl publishes (docs/dnsctl.md).
const (
	usageDANEEE  = 3 // RFC 7218: DANE-EE, the server's own key, no PKIX check
	selectorSPKI = 1 // the SubjectPublicKeyInfo, not the whole certificate
	matchSHA256  = 1
)

// EE311 returns the TLSA record "3 1 1" that matches a certificate whose
// SubjectPublicKeyInfo has the SHA-256 spki (hex).
func EE311(spki string, ttl uint32) TLSA {
	return TLSA{Usage: usageDANEEE, Selector: selectorSPKI, MatchingType: matchSHA256, Data: strings.ToLower(spki), TTL: ttl}
}

func (t TLSA) String() string {
	return fmt.Sprintf("%d TLSA %d %d %d %s", t.TTL, t.Usage, t.Selector, t.MatchingType, t.Data)
}

// Matches reports whether t is a DANE-EE record (usage 3) for cert.
// Records of other usages need the chain, and are never matched (RFC 7672
// §3.1.3 recommends usage 3 or 2 for SMTP; dnsctl manages only 3).
func (t TLSA) Matches(cert *x509.Certificate) bool {
	if t.Usage != usageDANEEE {
		return false
	}
	var data []byte
	switch t.Selector {
	case 0:
		data = cert.Raw
	case selectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	var sum []byte
	switch t.MatchingType {
	case 0:
		sum = data
	case 1:
		s := sha256.Sum256(data)
		sum = s[:]
	case 2:
		s := sha512.Sum512(data)
		sum = s[:]
	default:
		return false
	}
	return strings.EqualFold(hex.EncodeToString(sum), t.Data)
}

// SPKISHA256 is the SHA-256 of cert's SubjectPublicKeyInfo, lower-case
// hex: what mxd reports as spki_sha256 and a 3 1 1 record holds.
func SPKISHA256(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}

// TLSASet is a TLSA RRset in a stable order, without exact duplicates.
type TLSASet []TLSA

// NewTLSASet returns the records sorted, without exact duplicates. The
// data compares case-insensitively, as hex does.
func NewTLSASet(recs ...TLSA) TLSASet {
	s := slices.Clone(TLSASet(recs))
	for i := range s {
		s[i].Data = strings.ToLower(s[i].Data)
	}
	slices.SortFunc(s, func(a, b TLSA) int {
		return cmp.Or(cmp.Compare(a.Usage, b.Usage), cmp.Compare(a.Selector, b.Selector),
			cmp.Compare(a.MatchingType, b.MatchingType), strings.Compare(a.Data, b.Data), cmp.Compare(a.TTL, b.TTL))
	})
	return slices.Compact(s)
}

// Equal reports whether s and o hold the same records with the same TTLs.
func (s TLSASet) Equal(o TLSASet) bool { return slices.Equal(NewTLSASet(s...), NewTLSASet(o...)) }

// Match returns the records of s that match cert.
func (s TLSASet) Match(cert *x509.Certificate) TLSASet {
	var out TLSASet
	for _, t := range s {
		if t.Matches(cert) {
			out = append(out, t)
		}
	}
	return out
}

func (s TLSASet) String() string {
	if len(s) == 0 {
		return "(no TLSA records)"
	}
	var parts []string
	for _, t := range NewTLSASet(s...) {
		parts = append(parts, t.String())
	}
	return strings.Join(parts, ", ")
}

// ttl is the TTL of the RRset (its records share one; the largest if not).
func (s TLSASet) ttl() uint32 {
	var ttl uint32
	for _, t := range s {
		ttl = max(ttl, t.TTL)
	}
	return ttl
}

// rrs returns fresh miekg/dns records for s, owned by name.
func (s TLSASet) rrs(name string) []dns.RR {
	var out []dns.RR
	for _, t := range s {
		out = append(out, &dns.TLSA{
			Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: t.TTL},
			Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Certificate: t.Data,
		})
	}
	return out
}

// TLSAName is where the TLSA records of an MX host's SMTP service live
// (RFC 7672 §2.2.3): _25._tcp.HOST.
func TLSAName(host string) string { return "_25._tcp." + dns.Fqdn(host) }

// TLSAView is what one authoritative server answered for a host's TLSA
// RRset.
type TLSAView struct {
	Server string  `json:"server"`
	Serial uint32  `json:"serial"`
	TLSA   TLSASet `json:"tlsa"`
	Err    error   `json:"-"`
	Error  string  `json:"error,omitempty"` // Err, for JSON
}

// tlsa reads the TLSA RRset of host from addr: none when the name does
// not exist or has no TLSA.
func (z *Zone) tlsa(ctx context.Context, addr, host string) (TLSASet, error) {
	r, err := z.lookup(ctx, addr, TLSAName(host), dns.TypeTLSA, false)
	if err != nil {
		return nil, err
	}
	var set TLSASet
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok && SameName(t.Hdr.Name, TLSAName(host)) {
			set = append(set, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: t.Certificate, TTL: t.Hdr.Ttl})
		}
	}
	return NewTLSASet(set...), nil
}

// ReadTLSA returns host's TLSA RRset on addr and the serial it belongs to.
func (z *Zone) ReadTLSA(ctx context.Context, addr, host string) TLSAView {
	v := TLSAView{Server: addr}
	v.Serial, v.Err = z.atSerial(ctx, addr, func() (err error) {
		v.TLSA, err = z.tlsa(ctx, addr, host)
		return err
	})
	if v.Err != nil {
		v.TLSA, v.Error = nil, v.Err.Error()
	}
	return v
}

// ReadTLSAAll reads host's TLSA RRset on every address of Addrs at once;
// the primary comes first.
func (z *Zone) ReadTLSAAll(ctx context.Context, host string) []TLSAView {
	addrs := z.Addrs()
	views := make([]TLSAView, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { views[i] = z.ReadTLSA(ctx, a, host) })
	}
	wg.Wait()
	return views
}

// UpdateTLSA replaces host's TLSA RRset current by target with one signed
// UPDATE whose prerequisite is the exact current RRset (or its absence),
// so a concurrent change fails (*ConflictError) and a killed run leaves
// either the old RRset or the new one. Records in target and not in
// current are added, records in current and not in target deleted; the
// TTLs of target must all be the same.
func (z *Zone) UpdateTLSA(ctx context.Context, host string, current, target TLSASet) error {
	name := TLSAName(host)
	add, del := diffTLSA(current, target), diffTLSA(target, current)
	build := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetUpdate(z.zone())
		if len(current) == 0 {
			m.RRsetNotUsed([]dns.RR{&dns.TLSA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTLSA, Class: dns.ClassINET}}})
		} else {
			m.Used(current.rrs(name))
		}
		if len(del) > 0 {
			m.Remove(del.rrs(name))
		}
		if len(add) > 0 {
			m.Insert(add.rrs(name))
		}
		return m
	}
	applied := func() bool {
		v := z.ReadTLSA(ctx, z.Primary, host)
		return v.Err == nil && v.TLSA.Equal(target)
	}
	return z.update(ctx, nil, fmt.Sprintf("the TLSA RRset of %s is no longer %s", name, current), build, applied)
}

// diffTLSA returns the records of b that a lacks.
func diffTLSA(a, b TLSASet) TLSASet {
	var out TLSASet
	for _, t := range b {
		if !slices.Contains(NewTLSASet(a...), NewTLSASet(t)[0]) {
			out = append(out, t)
		}
	}
	return out
}

// signed reports whether the primary serves the zone signed: the apex
// has a DNSKEY RRset and host's TLSA RRset (when present) comes with an
// RRSIG. Without DNSSEC a sender ignores TLSA records (RFC 7672 §2.2).
func (z *Zone) signed(ctx context.Context, host string) (bool, string, error) {
	r, err := z.lookup(ctx, z.Primary, z.zone(), dns.TypeDNSKEY, true)
	if err != nil {
		return false, "", err
	}
	if !hasType(r.Answer, dns.TypeDNSKEY) {
		return false, fmt.Sprintf("%s has no DNSKEY on %s", z.zone(), z.Primary), nil
	}
	r, err = z.lookup(ctx, z.Primary, TLSAName(host), dns.TypeTLSA, true)
	if err != nil {
		return false, "", err
	}
	if hasType(r.Answer, dns.TypeTLSA) && !hasSig(r.Answer, dns.TypeTLSA) {
		return false, fmt.Sprintf("the TLSA RRset of %s on %s has no RRSIG", TLSAName(host), z.Primary), nil
	}
	return true, "", nil
}

func hasType(rrs []dns.RR, t uint16) bool {
	return slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == t })
}

func hasSig(rrs []dns.RR, covered uint16) bool {
	return slices.ContainsFunc(rrs, func(rr dns.RR) bool {
		s, ok := rr.(*dns.RRSIG)
		return ok && s.TypeCovered == covered
	})
}

// negativeTTL is how long a resolver may cache the absence of a name in
// the zone (RFC 2308 §5: the smaller of the SOA's TTL and MINIMUM).
func (z *Zone) negativeTTL(ctx context.Context) (uint32, error) {
	r, err := z.query(ctx, z.Primary, dns.TypeSOA)
	if err != nil {
		return 0, err
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), nil
		}
	}
	return 0, fmt.Errorf("query %s SOA: no SOA in the answer", z.Name)
}
