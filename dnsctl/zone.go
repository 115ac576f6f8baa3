package dnsctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Zone is one zone whose apex MX RRset dnsctl reads and changes.
type Zone struct {
	Name    string   // the zone's origin, e.g. "example.org."
	Primary string   // host:port of the server that takes UPDATEs
	Servers []string // further authoritative host:port addresses to check
	Key     *Key     // signs every UPDATE

	// Timeout bounds one query or one UPDATE exchange. Zero means
	// DefaultQueryTimeout.
	Timeout time.Duration
	// Poll is the pause between rounds of queries while waiting for
	// propagation (default 250ms).
	Poll time.Duration
}

// View is what one authoritative server answered.
type View struct {
	Server string `json:"server"`
	Serial uint32 `json:"serial"`
	MX     RRset  `json:"mx"`
	Err    error  `json:"-"`
}

// Summary describes the view in a few words.
func (v View) Summary() string {
	if v.Err != nil {
		return v.Err.Error()
	}
	return fmt.Sprintf("serial %d, %s", v.Serial, v.MX)
}

// DefaultQueryTimeout bounds one query or UPDATE exchange of a Zone
// whose Timeout is zero.
const DefaultQueryTimeout = 3 * time.Second

func (z *Zone) timeout() time.Duration {
	if z.Timeout > 0 {
		return z.Timeout
	}
	return DefaultQueryTimeout
}

func (z *Zone) poll() time.Duration {
	if z.Poll > 0 {
		return z.Poll
	}
	return 250 * time.Millisecond
}

// Addrs returns the primary and then the other servers, once each.
func (z *Zone) Addrs() []string {
	out := []string{z.Primary}
	for _, a := range z.Servers {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// query asks addr one question with RD=0 over UDP, again over TCP when the
// answer is truncated, and accepts only an authoritative NOERROR answer.
func (z *Zone) query(ctx context.Context, addr string, qtype uint16) (*dns.Msg, error) {
	return z.ask(ctx, addr, z.Name, qtype)
}

func (z *Zone) ask(ctx context.Context, addr, name string, qtype uint16) (*dns.Msg, error) {
	r, err := z.lookup(ctx, addr, name, qtype, false)
	if err == nil && r.Rcode == dns.RcodeNameError {
		return nil, fmt.Errorf("query %s %s: NXDOMAIN", name, dns.TypeToString[qtype])
	}
	return r, err
}

// lookup is ask that takes an authoritative NXDOMAIN as an answer (with
// no records) and, with do, sets the DNSSEC OK bit (RFC 3225) so that a
// signed zone's answer carries its RRSIGs.
func (z *Zone) lookup(ctx context.Context, addr, name string, qtype uint16, do bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	m.SetEdns0(1232, do)
	var r *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := dns.Client{Net: network, Timeout: z.timeout()}
		r, _, err = c.ExchangeContext(ctx, m, addr)
		if err != nil {
			return nil, fmt.Errorf("query %s %s over %s: %w", name, dns.TypeToString[qtype], network, err)
		}
		if !r.Truncated {
			break
		}
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("query %s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("query %s %s: answer is not authoritative (AA not set)", name, dns.TypeToString[qtype])
	}
	return r, nil
}

func (z *Zone) serial(ctx context.Context, addr string) (uint32, error) {
	r, err := z.query(ctx, addr, dns.TypeSOA)
	if err != nil {
		return 0, err
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok && SameName(soa.Hdr.Name, z.Name) {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("query %s SOA: no SOA in the answer", z.Name)
}

func (z *Zone) mx(ctx context.Context, addr string) (RRset, error) {
	r, err := z.query(ctx, addr, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var set RRset
	for _, rr := range r.Answer {
		if mx, ok := rr.(*dns.MX); ok && SameName(mx.Hdr.Name, z.Name) {
			set = append(set, MX{Preference: mx.Preference, Exchange: mx.Mx, TTL: mx.Hdr.Ttl})
		}
	}
	return NewRRset(set...), nil
}

// Read returns the apex MX RRset and the SOA serial of addr. It reads the
// serial before and after the MX RRset and tries again when they differ,
// so the pair belongs together.
func (z *Zone) Read(ctx context.Context, addr string) View {
	v := View{Server: addr}
	v.Serial, v.Err = z.atSerial(ctx, addr, func() (err error) {
		v.MX, err = z.mx(ctx, addr)
		return err
	})
	if v.Err != nil {
		v.MX = nil
	}
	return v
}

// atSerial runs read between two reads of addr's serial, again when they
// differ, and returns the serial the read belongs to.
func (z *Zone) atSerial(ctx context.Context, addr string, read func() error) (uint32, error) {
	for range 3 {
		before, err := z.serial(ctx, addr)
		if err != nil {
			return 0, err
		}
		if err := read(); err != nil {
			return 0, err
		}
		after, err := z.serial(ctx, addr)
		if err != nil {
			return 0, err
		}
		if before == after {
			return after, nil
		}
	}
	return 0, errors.New("serial changed during every read")
}

// ReadAll reads every address of Addrs at once; the primary comes first.
func (z *Zone) ReadAll(ctx context.Context) []View {
	addrs := z.Addrs()
	views := make([]View, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { views[i] = z.Read(ctx, a) })
	}
	wg.Wait()
	return views
}

// Agree reports whether every view answered and all show the RRset of the
// first (the primary's) with a serial at least the first's.
func Agree(views []View) bool {
	for _, v := range views {
		if v.Err != nil || !v.MX.Equal(views[0].MX) || !serialAtLeast(v.Serial, views[0].Serial) {
			return false
		}
	}
	return len(views) > 0
}

// HostAddrs returns the IP addresses of an MX exchange: from the primary
// (RD=0) when the name is inside the zone, so that no cache stands in the
// way; else from the system resolver.
func (z *Zone) HostAddrs(ctx context.Context, host string) ([]string, error) {
	if !dns.IsSubDomain(z.zone(), dns.Fqdn(host)) {
		return net.DefaultResolver.LookupHost(ctx, trimDot(host))
	}
	var out []string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := z.ask(ctx, z.Primary, host, qt)
		if err != nil {
			return nil, err
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, rr.A.String())
			case *dns.AAAA:
				out = append(out, rr.AAAA.String())
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no A or AAAA record", host)
	}
	return out, nil
}
