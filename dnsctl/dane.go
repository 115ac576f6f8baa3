package dnsctl

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// DANE keeps the TLSA records of MX hosts (RFC 7672) true to the keys the
// hosts serve: Publish adds the record of a new key before any host serves
// it, Retire removes the records of keys no host serves any more, and
// Status compares both. Zero settings take the values of Defaults.
type DANE struct {
	Zone        *Zone
	SMTPPort    int           // where the hosts serve STARTTLS
	TTL         uint32        // of a host's first TLSA records; later ones take the RRset's
	Margin      time.Duration // added to the TTL waited after a publish
	Propagation time.Duration // how long every authoritative server may take to agree
	Progress    func(Event)   // nil drops the events
	// Sleep waits d or until ctx ends; nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultTLSATTL is the TTL of a host's first TLSA records.
const DefaultTLSATTL = 3600

func (d *DANE) settings() DANE {
	s, def := *d, Defaults()
	if s.SMTPPort == 0 {
		s.SMTPPort = def.SMTPPort
	}
	if s.TTL == 0 {
		s.TTL = DefaultTLSATTL
	}
	if s.Propagation == 0 {
		s.Propagation = def.Propagation
	}
	if s.Sleep == nil {
		s.Sleep = sleep
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (d *DANE) say(host, phase, format string, args ...any) {
	if d.Progress != nil {
		d.Progress(Event{Time: time.Now(), Host: host, Phase: Phase(phase), Msg: fmt.Sprintf(format, args...)})
	}
}

// TLSAStatus is a host's TLSA records next to the keys it serves.
type TLSAStatus struct {
	Host      string     `json:"host"`
	Name      string     `json:"name"` // _25._tcp.HOST.
	Published TLSASet    `json:"published"`
	Servers   []TLSAView `json:"servers"` // every authoritative server, primary first
	Agree     bool       `json:"agree"`   // every server shows the primary's RRset
	Addrs     []AddrKeys `json:"addrs"`
	Keys      []KeyMatch `json:"keys"`
	// Unused are the DANE-EE records no served key matches: what Retire
	// would remove.
	Unused TLSASet `json:"unused"`
	OK     bool    `json:"ok"` // every address answered and every served key has a record
}

// KeyMatch says whether one served key has a record.
type KeyMatch struct {
	ServedKey
	Records TLSASet `json:"records"`
}

// Status reads host's TLSA RRset from every authoritative server and asks
// every address of host for the keys it serves.
func (d *DANE) Status(ctx context.Context, host string) (*TLSAStatus, error) {
	s := d.settings()
	st := &TLSAStatus{Host: host, Name: TLSAName(host), Servers: s.Zone.ReadTLSAAll(ctx, host), Agree: true}
	prim := st.Servers[0]
	if prim.Err != nil {
		return nil, fmt.Errorf("primary %s: %w", prim.Server, prim.Err)
	}
	st.Published = prim.TLSA
	for _, v := range st.Servers {
		if v.Err != nil || !v.TLSA.Equal(prim.TLSA) || !serialAtLeast(v.Serial, prim.Serial) {
			st.Agree = false
		}
	}
	addrs, err := s.Zone.ServedKeys(ctx, host, s.SMTPPort)
	if err != nil {
		return nil, err
	}
	st.Addrs, st.OK = addrs, true
	used := TLSASet{}
	for _, a := range addrs {
		if a.Err != "" {
			st.OK = false
		}
		for _, k := range a.Keys {
			m := KeyMatch{ServedKey: k, Records: st.Published.Match(k.Cert)}
			if len(m.Records) == 0 {
				st.OK = false
			}
			used = append(used, m.Records...)
			st.Keys = append(st.Keys, m)
		}
	}
	for _, t := range st.Published {
		if t.Usage == usageDANEEE && len(diffTLSA(used, TLSASet{t})) > 0 {
			st.Unused = append(st.Unused, t)
		}
	}
	return st, nil
}

// WriteText prints the status for people.
func (st *TLSAStatus) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s\n", st.Name)
	for _, t := range st.Published {
		fmt.Fprintf(w, "  published %s\n", t)
	}
	if len(st.Published) == 0 {
		fmt.Fprintln(w, "  published (none)")
	}
	for _, v := range st.Servers {
		state := "agrees"
		switch {
		case v.Err != nil:
			state = v.Err.Error()
		case !v.TLSA.Equal(st.Published):
			state = "differs: " + v.TLSA.String()
		}
		fmt.Fprintf(w, "  server %s serial %d: %s\n", v.Server, v.Serial, state)
	}
	for _, a := range st.Addrs {
		if a.Err != "" {
			fmt.Fprintf(w, "  %s: %s\n", a.Addr, a.Err)
		}
	}
	for _, k := range st.Keys {
		match := "NO RECORD"
		if len(k.Records) > 0 {
			match = "matches " + k.Records.String()
		}
		fmt.Fprintf(w, "  %s serves %s spki_sha256 %s (expires %s): %s\n", k.Addr, k.KeyType, k.SPKISHA256,
			k.NotAfter.UTC().Format(time.DateOnly), match)
	}
	for _, t := range st.Unused {
		fmt.Fprintf(w, "  unused %s (dnsctl tlsa retire removes it)\n", t)
	}
	if st.OK {
		fmt.Fprintln(w, "ok: every key served has a record")
	} else {
		fmt.Fprintln(w, "NOT OK: a key served has no record, or an address did not answer")
	}
}

// LoadCerts reads the first certificate (the leaf) of each PEM file.
func LoadCerts(files ...string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c *x509.Certificate
		for c == nil {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				return nil, fmt.Errorf("%s: no PEM CERTIFICATE", f)
			}
			if blk.Type == "CERTIFICATE" {
				if c, err = x509.ParseCertificate(blk.Bytes); err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// PublishReport is the outcome of Publish.
type PublishReport struct {
	Host     string    `json:"host"`
	Added    TLSASet   `json:"added"`     // empty when every key had a record
	TLSA     TLSASet   `json:"tlsa"`      // the RRset every server now shows
	Waited   string    `json:"waited"`    // the TTL and margin waited
	SwitchAt time.Time `json:"switch_at"` // from then on the host may serve the new keys
}

// Publish adds a DANE-EE SPKI SHA-256 record (3 1 1) for each of certs
// whose key host's TLSA RRset does not match yet, next to the records
// there, in one UPDATE guarded by the current RRset; waits until every
// authoritative server shows the new RRset; then waits out what resolvers
// may still hold: the RRset's TTL, or, when the host had no TLSA records,
// the zone's negative TTL (RFC 2308), whichever is longer, plus Margin.
// Run again after a kill, it finds the records there, adds nothing, and
// waits again in full: it cannot know how long they have been there.
func (d *DANE) Publish(ctx context.Context, host string, certs []*x509.Certificate) (*PublishReport, error) {
	s := d.settings()
	z := s.Zone
	v := z.ReadTLSA(ctx, z.Primary, host)
	if v.Err != nil {
		return nil, fmt.Errorf("primary %s: %w", v.Server, v.Err)
	}
	current := v.TLSA
	ttl := current.ttl()
	if len(current) == 0 {
		ttl = s.TTL
	}
	rep := &PublishReport{Host: host}
	for _, c := range certs {
		if len(current.Match(c)) == 0 && len(diffTLSA(rep.Added, TLSASet{EE311(SPKISHA256(c), ttl)})) > 0 {
			rep.Added = append(rep.Added, EE311(SPKISHA256(c), ttl))
		}
	}
	target := NewTLSASet(append(current, rep.Added...)...)
	if len(rep.Added) > 0 {
		s.say(host, "publish", "adding %s to %s (now %s)", rep.Added, TLSAName(host), current)
		if err := z.UpdateTLSA(ctx, host, current, target); err != nil {
			return nil, err
		}
	} else {
		s.say(host, "publish", "every key already has a record in %s", TLSAName(host))
	}
	if err := s.waitTLSA(ctx, host, target); err != nil {
		return nil, err
	}
	wait := time.Duration(ttl) * time.Second
	if len(current) == 0 {
		neg, err := z.negativeTTL(ctx)
		if err != nil {
			return nil, err
		}
		wait = max(wait, time.Duration(neg)*time.Second)
	}
	wait += s.Margin
	rep.TLSA, rep.Waited = target, wait.String()
	s.say(host, "ttl", "every server shows %s; waiting %s until resolvers forget the old RRset", target, wait)
	if err := s.Sleep(ctx, wait); err != nil {
		return nil, err
	}
	rep.SwitchAt = time.Now()
	return rep, nil
}

// waitTLSA polls every authoritative server until each shows target with a
// serial at least the primary's, or Propagation has passed (*LagError).
func (d DANE) waitTLSA(ctx context.Context, host string, target TLSASet) error {
	z := d.Zone
	deadline := time.Now().Add(d.Propagation)
	for {
		views := z.ReadTLSAAll(ctx, host)
		var lag []View
		prim := views[0]
		for _, v := range views {
			if v.Err != nil || !prim.TLSA.Equal(target) || !v.TLSA.Equal(target) || !serialAtLeast(v.Serial, prim.Serial) {
				lag = append(lag, View{Server: v.Server, Serial: v.Serial, Err: lagReason(v, target)})
			}
		}
		if len(lag) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return &LagError{Serial: prim.Serial, Lagging: lag, What: fmt.Sprintf("%s %s", TLSAName(host), target)}
		}
		if err := sleep(ctx, min(z.poll(), time.Until(deadline))); err != nil {
			return err
		}
	}
}

func lagReason(v TLSAView, target TLSASet) error {
	if v.Err != nil {
		return v.Err
	}
	return fmt.Errorf("serial %d, %s", v.Serial, v.TLSA)
}

// RetireReport is the outcome of Retire.
type RetireReport struct {
	Host    string  `json:"host"`
	Removed TLSASet `json:"removed"`
	TLSA    TLSASet `json:"tlsa"`
}

// Retire removes host's DANE-EE records that no key served by any of its
// addresses matches, in one UPDATE guarded by the current RRset, and
// waits until every authoritative server shows the rest. It refuses
// (*RefusedError) while the zone is not signed, while an address of host
// cannot be asked, while the authoritative servers disagree, and while a
// served key has no record: the first means
// no sender checks the records, so nothing tells a removal is safe; the
// others that the host is between certificates, and a record removed now
// may be the one a validating sender needs.
func (d *DANE) Retire(ctx context.Context, host string) (*RetireReport, error) {
	s := d.settings()
	z := s.Zone
	signed, why, err := z.signed(ctx, host)
	if err != nil {
		return nil, err
	}
	if !signed {
		return nil, &RefusedError{Reason: why + ": the zone is not signed, so senders ignore its TLSA records (RFC 7672 §2.2) and " +
			"dnsctl cannot tell which of them a validating sender will rely on once it is; sign the zone, or change TLSA by hand"}
	}
	st, err := s.Status(ctx, host)
	if err != nil {
		return nil, err
	}
	var problems []string
	if !st.Agree {
		problems = append(problems, "the authoritative servers do not all show the primary's RRset yet (see dnsctl tlsa status)")
	}
	for _, a := range st.Addrs {
		if a.Err != "" {
			problems = append(problems, fmt.Sprintf("%s could not be asked which keys it serves: %s", a.Addr, a.Err))
		}
	}
	for _, k := range st.Keys {
		if len(k.Records) == 0 {
			problems = append(problems, fmt.Sprintf("%s serves %s key %s, which has no record: run dnsctl tlsa publish first", k.Addr, k.KeyType, k.SPKISHA256))
		}
	}
	if len(problems) > 0 {
		return nil, &RefusedError{Reason: "retire " + TLSAName(host) + ": " + strings.Join(problems, "; ")}
	}
	rep := &RetireReport{Host: host, Removed: st.Unused, TLSA: diffTLSA(st.Unused, st.Published)}
	if len(st.Unused) == 0 {
		s.say(host, "retire", "every record of %s matches a served key; nothing to remove", TLSAName(host))
		return rep, nil
	}
	s.say(host, "retire", "removing %s from %s", st.Unused, TLSAName(host))
	if err := z.UpdateTLSA(ctx, host, st.Published, rep.TLSA); err != nil {
		return nil, err
	}
	return rep, s.waitTLSA(ctx, host, rep.TLSA)
}
