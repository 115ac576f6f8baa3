package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// A dialer opens the tool's SMTP sessions: the TCP connection, from which
// source address, the greeting, EHLO and, with a TLS configuration,
// STARTTLS (RFC 3207) and EHLO again. It is shared by all sessions of a run.
type dialer struct {
	server  string
	helo    string
	timeout time.Duration // to connect, per reply, and for the TLS handshake
	// tls, when set, makes every session STARTTLS before its first MAIL.
	// With a ClientSessionCache, a later connection offers the session of
	// an earlier one (TLS 1.3 tickets, TLS 1.2 tickets or session IDs).
	tls *tls.Config
	// sources are the local addresses connections are made from, in turn;
	// empty lets the kernel choose.
	sources []netip.Addr
	next    atomic.Uint64
}

// errNoStartTLS is the failure of a session whose server does not offer
// STARTTLS when -starttls asked for it.
var errNoStartTLS = errors.New("starttls: not offered in the EHLO reply")

// A tlsError is a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// dial connects, reads the greeting and says EHLO (HELO if EHLO is
// refused); with d.tls it then says STARTTLS, does the handshake and says
// EHLO again. A greeting other than 220 is returned as a *replyError.
func (d *dialer) dial(ctx context.Context) (*client, error) {
	start := time.Now()
	nd := net.Dialer{Timeout: d.timeout}
	if len(d.sources) > 0 {
		src := d.sources[(d.next.Add(1)-1)%uint64(len(d.sources))]
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	conn, err := nd.DialContext(ctx, "tcp", d.server)
	if err != nil {
		return nil, err
	}
	c := &client{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, 4096),
		w:       bufio.NewWriterSize(conn, 32<<10),
		timeout: d.timeout,
		ext:     map[string]string{},
		start:   start,
	}
	if err := c.hello(d.helo); err != nil {
		conn.Close()
		return nil, err
	}
	if d.tls == nil {
		return c, nil
	}
	if err := c.startTLS(ctx, d.tls, d.helo); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// startTLS says STARTTLS, does the handshake over the connection and says
// EHLO again: RFC 3207 §4.2 has the client discard what it knew from the
// first EHLO.
func (c *client) startTLS(ctx context.Context, cfg *tls.Config, helo string) error {
	if _, ok := c.ext["STARTTLS"]; !ok {
		return errNoStartTLS
	}
	r, err := c.cmd("STARTTLS")
	if err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	if r.code != 220 {
		return &replyError{stage: "starttls", r: r}
	}
	tc := tls.Client(c.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return &tlsError{err}
	}
	st := tc.ConnectionState()
	c.conn, c.tls = tc, &st
	c.r.Reset(tc)
	c.w.Reset(tc)
	c.ext = map[string]string{}
	return c.ehlo(helo)
}

// parseSources reads -source: an address, a range within one /24
// ("127.0.0.2-127.0.0.254"), or a comma list of either. Every address must
// be a loopback address: the tool spreads load over addresses of this
// machine, never sends from borrowed ones.
func parseSources(v string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := loopback(lo)
		if err != nil {
			return nil, err
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := loopback(hi)
		if err != nil {
			return nil, err
		}
		net24, _ := first.Prefix(24)
		if !first.Is4() || !last.Is4() || !net24.Contains(last) || last.Less(first) {
			return nil, fmt.Errorf("%q: a range is two IPv4 addresses in one /24, the lower first", item)
		}
		for a := first; a.Compare(last) <= 0; a = a.Next() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in %q", v)
	}
	return out, nil
}

func loopback(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	a = a.Unmap()
	if !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("%s is not a loopback address", a)
	}
	return a, nil
}
