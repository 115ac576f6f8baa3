package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gm "github.com/d--j/go-milter"
)

// ParseAction reads "tempfail", "accept" or "reject".
// These are a default action's: a milter that fails is taken to have
// said Tempfail (451 4.7.1, Postfix's milter_default_action), Accept (go
// on without it) or Reject (550 5.7.1).
func ParseAction(s string) (Kind, error) {
	switch s {
	case "tempfail":
		return Tempfail, nil
	case "accept":
		return Accept, nil
	case "reject":
		return Reject, nil
	}
	return 0, fmt.Errorf("default_action %q: want tempfail, accept or reject", s)
}

// Spec is one milter's configuration.
type Spec struct {
	// Name is the milter as configured ("inet:127.0.0.1:11332"): in logs,
	// metrics and the transaction's log line.
	Name string
	// Network and Address are where it listens: "tcp" and host:port, or
	// "unix" and a path.
	Network, Address string
	// ConnectTimeout bounds a connection and its negotiation;
	// CommandTimeout each reply to a command before the data;
	// ContentTimeout each reply during the data and at its end.
	ConnectTimeout, CommandTimeout, ContentTimeout time.Duration
	// DefaultAction applies when the milter fails.
	DefaultAction Kind
	// MaxConnections bounds the connections open to the milter, each
	// serving one message at a time. A message that finds them all busy
	// waits up to ConnectTimeout for one.
	MaxConnections int
	// RideThrough is how long Begin keeps trying a milter that refuses
	// connections (a restart) before it gives up.
	RideThrough time.Duration
}

// Parse reads one milter as Postfix writes it in smtpd_milters:
// "inet:host:port", "unix:/path", or the same in braces with settings
// of its own: "{ inet:127.0.0.1:11332, default_action=accept,
// command_timeout=5s }". What the entry leaves out comes from d.
func Parse(s string, d Spec) (Spec, error) {
	sp := d
	s = strings.TrimSpace(s)
	var opts []string
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return sp, fmt.Errorf("milter %q: a { must end with }", s)
		}
		parts := strings.Split(strings.TrimSpace(s[1:len(s)-1]), ",")
		s, opts = strings.TrimSpace(parts[0]), parts[1:]
	}
	sp.Name = s
	switch {
	case strings.HasPrefix(s, "inet:"):
		sp.Network, sp.Address = "tcp", strings.TrimPrefix(s, "inet:")
		if _, _, err := net.SplitHostPort(sp.Address); err != nil {
			return sp, fmt.Errorf("milter %q: want inet:host:port: %v", s, err)
		}
	case strings.HasPrefix(s, "unix:"):
		sp.Network, sp.Address = "unix", strings.TrimPrefix(s, "unix:")
	default:
		return sp, fmt.Errorf("milter %q: want inet:host:port or unix:/path", s)
	}
	for _, o := range opts {
		k, v, ok := strings.Cut(strings.TrimSpace(o), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return sp, fmt.Errorf("milter %q: %q: want name=value", s, o)
		}
		var err error
		switch k {
		case "connect_timeout":
			sp.ConnectTimeout, err = time.ParseDuration(v)
		case "command_timeout":
			sp.CommandTimeout, err = time.ParseDuration(v)
		case "content_timeout":
			sp.ContentTimeout, err = time.ParseDuration(v)
		case "default_action":
			sp.DefaultAction, err = ParseAction(v)
		default:
			err = errors.New("unknown setting (connect_timeout, command_timeout, content_timeout, default_action)")
		}
		if err != nil {
			return sp, fmt.Errorf("milter %q: %s: %v", s, k, err)
		}
	}
	return sp, nil
}

// Filter is one milter and the pool of connections to it. It is safe for
// concurrent use.
type Filter struct {
	spec  Spec
	opts  []gm.Option
	slots chan struct{} // a token per connection that may be open
	idle  chan *conn    // open connections between messages
	// waiting counts the messages waiting for the milter: for a free
	// connection, or riding through its refusals.
	waiting atomic.Int64
}

// Waiting returns how many messages wait for the milter now.
func (f *Filter) Waiting() int { return int(f.waiting.Load()) }

// macroStages are the macros sent at each stage: Postfix's defaults, so
// that a milter written for Postfix finds what it reads, plus the client
// address rspamd and others read at connect. A milter that asks for
// others at negotiation gets those instead.
var macroStages = map[gm.MacroStage][]gm.MacroName{
	gm.StageConnect: {gm.MacroMTAFQDN, gm.MacroDaemonName, gm.MacroDaemonAddr, gm.MacroMTAVersion, gm.MacroRFC1413AuthInfo,
		gm.MacroClientAddr, gm.MacroClientPort, gm.MacroClientName, gm.MacroClientPTR},
	gm.StageHelo: {gm.MacroTlsVersion, gm.MacroCipher, gm.MacroCipherBits, gm.MacroCertSubject, gm.MacroCertIssuer},
	gm.StageMail: {gm.MacroQueueId, gm.MacroAuthType, gm.MacroAuthAuthen, gm.MacroAuthAuthor, gm.MacroMailAddr, gm.MacroMailHost, gm.MacroMailMailer},
	gm.StageRcpt: {gm.MacroQueueId, gm.MacroRcptAddr, gm.MacroRcptHost, gm.MacroRcptMailer},
	gm.StageData: {gm.MacroQueueId},
	gm.StageEOH:  {gm.MacroQueueId},
	gm.StageEOM:  {gm.MacroQueueId},
}

// New returns the Filter of sp. It opens no connection yet.
func New(sp Spec) *Filter {
	f := &Filter{spec: sp, slots: make(chan struct{}, max(sp.MaxConnections, 1)), idle: make(chan *conn, max(sp.MaxConnections, 1))}
	opts := []gm.Option{
		// Deadlines are set by conn, per stage.
		gm.WithReadTimeout(0), gm.WithWriteTimeout(0),
		// rspamd refuses a connection that does not offer every action
		// it may take; End reports those mxd does not apply.
		gm.WithActions(gm.AllClientSupportedActionMasks),
		gm.WithoutDefaultMacros(),
	}
	for st, names := range macroStages {
		opts = append(opts, gm.WithMacroRequest(st, names))
	}
	f.opts = opts
	return f
}

// Spec returns the filter's configuration.
func (f *Filter) Spec() Spec { return f.spec }

// Close closes the idle connections, giving their places in the pool
// back. Sessions in use close theirs when they end.
func (f *Filter) Close() {
	for {
		select {
		case c := <-f.idle:
			c.close()
			<-f.slots
		default:
			return
		}
	}
}

// dialer makes the library's connection ours: deadlines per stage and
// packets of bounded size. It dials once.
type dialer struct {
	timeout time.Duration
	wc      *wireConn
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	nc, err := nd.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	// The negotiation's deadline.
	nc.SetDeadline(time.Now().Add(d.timeout))
	d.wc = newWireConn(nc)
	return d.wc, nil
}

// conn is one negotiated connection to the milter.
type conn struct {
	s      *gm.ClientSession
	wc     *wireConn
	macros *gm.MacroBag
	used   bool // has served a message: QUIT_NC before the next
}

func (c *conn) close() { c.s.Close() }

// get takes an idle connection or opens one, waiting for a slot within
// ctx; fresh opens one in any case. A refused connection is tried again
// with back-off for RideThrough.
func (f *Filter) get(ctx context.Context, fresh bool) (*conn, error) {
	idle := f.idle
	if fresh {
		idle = nil // a receive from nil never proceeds
	}
	// An idle connection first, then a new one: a select would choose
	// between them at random.
	select {
	case c := <-idle:
		return c, nil
	default:
	}
	select {
	case f.slots <- struct{}{}:
		return f.dialSlot(ctx)
	default:
	}
	// Every connection is in use: wait for one, counted as waiting.
	wctx, cancel := context.WithTimeout(ctx, f.spec.ConnectTimeout)
	defer cancel()
	f.waiting.Add(1)
	select {
	case c := <-idle:
		f.waiting.Add(-1)
		return c, nil
	case f.slots <- struct{}{}:
		f.waiting.Add(-1)
		return f.dialSlot(ctx)
	case <-wctx.Done():
		f.waiting.Add(-1)
		return nil, fmt.Errorf("milter %s: all %d connections busy: %w", f.spec.Name, cap(f.slots), wctx.Err())
	}
}

// dialSlot opens a connection in the place in the pool the caller took,
// giving it back when that fails.
func (f *Filter) dialSlot(ctx context.Context) (*conn, error) {
	c, err := f.dial(ctx)
	if err != nil {
		<-f.slots
		return nil, err
	}
	return c, nil
}

// dial opens and negotiates a connection, riding through refusals.
func (f *Filter) dial(ctx context.Context) (*conn, error) {
	deadline := time.Now().Add(f.spec.RideThrough)
	wait := 50 * time.Millisecond
	for {
		macros := gm.NewMacroBag()
		d := &dialer{timeout: f.spec.ConnectTimeout}
		// A slice of its own: sessions dial at once, and an append to
		// f.opts could write the same spare element.
		opts := append(slices.Clip(f.opts), gm.WithDialer(d))
		s, err := gm.NewClient(f.spec.Network, f.spec.Address, opts...).Session(macros)
		if err == nil {
			return &conn{s: s, wc: d.wc, macros: macros}, nil
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("milter %s: %w", f.spec.Name, err)
		}
		if wait == 50*time.Millisecond {
			f.waiting.Add(1)
			defer f.waiting.Add(-1)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("milter %s: %w (%v)", f.spec.Name, ctx.Err(), err)
		}
		wait = min(2*wait, time.Second)
	}
}

// put gives c back to the pool, or closes it (when it failed).
func (f *Filter) put(c *conn, ok bool) {
	if ok {
		select {
		case f.idle <- c:
			return
		default:
		}
	}
	c.close()
	<-f.slots
}
