package dnsctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// updateAttempts is how often an UPDATE is sent when the connection fails
// before a reply arrives.
const updateAttempts = 3

// Remove takes every MX record of host out of the zone with one RFC 2136
// UPDATE whose prerequisite is the exact current RRset (§2.4.2), so that a
// concurrent change makes it fail (*ConflictError) instead of racing. It
// refuses (*RefusedError) when host is not in current or fewer than min
// records would remain; BIND and Knot both delete the last MX without
// complaint, so this guard is the only one. It returns the RRset the zone
// now has.
func (z *Zone) Remove(ctx context.Context, current RRset, host string, min int) (RRset, error) {
	target, err := PlanRemoval(current, host, min)
	if err != nil {
		return nil, err
	}
	build := func() *dns.Msg {
		m := z.newUpdate(current)
		m.Remove(current.Find(host).rrs(z.zone()))
		return m
	}
	return target, z.update(ctx, current, "", build, z.primaryShows(ctx, target))
}

// PlanRemoval returns current without host, or refuses when host is not in
// current or fewer than min (at least 1) records would remain.
func PlanRemoval(current RRset, host string, min int) (RRset, error) {
	if min < 1 {
		return nil, &RefusedError{Reason: fmt.Sprintf("minimum of remaining MX records is %d; it must be at least 1", min)}
	}
	if len(current.Find(host)) == 0 {
		return nil, &RefusedError{Reason: fmt.Sprintf("%s is not in the MX RRset %s", host, current)}
	}
	target := current.Without(host)
	if len(target) < min {
		return nil, &RefusedError{Reason: fmt.Sprintf("removing %s would leave %d MX records (%s), fewer than the minimum %d",
			host, len(target), target, min)}
	}
	return target, nil
}

// Restore replaces the RRset current by original with one UPDATE:
// prerequisite the exact current RRset, then delete the RRset and add the
// original records. Deleting first matters: adding one record with another
// TTL re-TTLs the whole RRset, and Knot ignores a re-add of an existing
// record with a new TTL.
func (z *Zone) Restore(ctx context.Context, current, original RRset) error {
	if len(original) == 0 {
		return &RefusedError{Reason: "the original RRset is empty"}
	}
	build := func() *dns.Msg {
		m := z.newUpdate(current)
		m.RemoveRRset(original[:1].rrs(z.zone()))
		m.Insert(original.rrs(z.zone()))
		return m
	}
	return z.update(ctx, current, "", build, z.primaryShows(ctx, original))
}

// primaryShows returns a check that the primary shows the MX RRset target.
func (z *Zone) primaryShows(ctx context.Context, target RRset) func() bool {
	return func() bool {
		v := z.Read(ctx, z.Primary)
		return v.Err == nil && v.MX.Equal(target)
	}
}

func (z *Zone) zone() string { return dns.Fqdn(z.Name) }

// newUpdate starts an UPDATE whose prerequisite is that the MX RRset is
// exactly current (or absent, when current is empty).
func (z *Zone) newUpdate(current RRset) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(z.zone())
	if len(current) == 0 {
		m.RRsetNotUsed([]dns.RR{&dns.MX{Hdr: dns.RR_Header{Name: z.zone(), Rrtype: dns.TypeMX, Class: dns.ClassINET}}})
	} else {
		m.Used(current.rrs(z.zone()))
	}
	return m
}

// update sends the message built by build to the primary, signed, over
// TCP. A connection that fails before a reply is tried again with a newly
// built and signed message (a re-signed message carries two TSIGs and gets
// FORMERR). If an earlier attempt may have been applied, a conflict on a
// later one is success when applied reports that the primary already shows
// what the UPDATE was to produce. current is the MX RRset a conflict names
// and what names another RRset the UPDATE guards instead ("" for MX).
func (z *Zone) update(ctx context.Context, current RRset, what string, build func() *dns.Msg, applied func() bool) error {
	if z.Key == nil {
		return errors.New("update: no TSIG key configured")
	}
	var err error
	for i := range updateAttempts {
		err = z.exchange(ctx, build())
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			conflict.Expected, conflict.What = current, what
			if i > 0 && applied() {
				return nil
			}
		}
		var nerr net.Error
		if !errors.As(err, &nerr) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// exchange sends one signed UPDATE and trusts the reply only when it
// carries a TSIG that verifies.
func (z *Zone) exchange(ctx context.Context, m *dns.Msg) error {
	k := z.Key
	m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
	c := dns.Client{
		Net:        "tcp",
		Timeout:    z.timeout(),
		TsigSecret: map[string]string{k.Name: k.Secret},
	}
	r, _, err := c.ExchangeContext(ctx, m, z.Primary)
	if r == nil {
		return fmt.Errorf("update on %s: %w", z.Primary, err)
	}
	return z.judge(m, r, err)
}

// tsigErrors explains the TSIG error codes of RFC 8945 §5.2.
var tsigErrors = map[int]string{
	dns.RcodeBadSig:   "the server knows the key name but the secret or algorithm differs",
	dns.RcodeBadKey:   "the server does not know a key of this name and algorithm",
	dns.RcodeBadTime:  "the clocks of this host and the server differ by more than the fudge",
	dns.RcodeBadTrunc: "truncated MAC",
}

// judge turns a reply to the signed UPDATE m into nil (applied) or an error.
// verr is miekg/dns's verdict on the reply's TSIG (nil if it verified or
// the reply had none): Exchange alone accepts unsigned replies.
func (z *Zone) judge(m, r *dns.Msg, verr error) error {
	t := r.IsTsig()
	if t != nil && t.Error != dns.RcodeSuccess {
		return &KeyError{Key: z.Key, Server: z.Primary, Reason: fmt.Sprintf("TSIG error %s (%s), rcode %s",
			dns.RcodeToString[int(t.Error)], tsigErrors[int(t.Error)], dns.RcodeToString[r.Rcode])}
	}
	if r.Rcode == dns.RcodeNotAuth {
		return &KeyError{Key: z.Key, Server: z.Primary, Reason: "NOTAUTH: the server does not accept this key for " + z.zone() +
			" (or is not authoritative for it)"}
	}
	if t == nil {
		return &UntrustedError{Server: z.Primary, Reason: fmt.Sprintf("reply (rcode %s) carries no TSIG", dns.RcodeToString[r.Rcode])}
	}
	if r.Id != m.Id {
		return &UntrustedError{Server: z.Primary, Reason: "reply id does not match the request"}
	}
	if verr != nil {
		return &UntrustedError{Server: z.Primary, Reason: "TSIG of the reply does not verify: " + verr.Error()}
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNXRrset:
		return &ConflictError{Server: z.Primary}
	case dns.RcodeRefused:
		return &KeyError{Key: z.Key, Server: z.Primary, Reason: "REFUSED: the update policy does not let this key change these records of " + z.zone()}
	default:
		return fmt.Errorf("update on %s: %s", z.Primary, dns.RcodeToString[r.Rcode])
	}
}
