package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	gm "github.com/d--j/go-milter"
)

// Kind is what a milter decided.
type Kind int

const (
	// Continue: no decision yet, send the next stage.
	Continue Kind = iota
	// Accept: the message passes this milter, which sees no more of it.
	Accept
	// Reject: refuse (5xx).
	Reject
	// Tempfail: refuse for now (4xx).
	Tempfail
	// Discard: answer as if queued, and drop the message.
	Discard
	// Quarantine: the milter wants the message held for review.
	Quarantine
)

var kindNames = [...]string{"continue", "accept", "reject", "tempfail", "discard", "quarantine"}

func (k Kind) String() string { return kindNames[k] }

// Verdict is a milter's answer to one stage.
type Verdict struct {
	Kind Kind
	// Reply is the milter's own SMTP reply, "554 5.7.1 text" (lines
	// joined by CRLF), when it gave one; else empty.
	Reply string
	// Reason is the text of a Quarantine.
	Reason string
}

// Done reports whether the milter decided and wants no more stages.
func (v Verdict) Done() bool { return v.Kind != Continue }

// Client is what a milter is told about the SMTP client and this host.
type Client struct {
	Addr     netip.AddrPort // the client's address (from PROXY when trusted)
	Name     string         // the client's host name; "unknown" when none
	HELO     string
	Hostname string // this host's name (macro j)
	Daemon   string // {daemon_name}
	Local    netip.AddrPort
	Version  string // macro v

	TLSVersion string // "TLSv1.3"; empty without TLS
	Cipher     string
	CipherBits int

	QueueID string // macro i
}

// Session is one message's turn on one connection to a milter. It is used
// by one goroutine. Every method after an error, a Done verdict, End or
// Abort is a no-op that returns the verdict already given.
type Session struct {
	f       *Filter
	c       *conn
	verdict Verdict
	ended   bool
	body    bool // a body chunk was sent

	ctx context.Context
	cl  Client
	// steps are the exchanges since open that the milter let pass, to be
	// sent again on a new connection when this one is lost (replay);
	// stepBytes is what they hold of the message.
	steps     []func() (Verdict, error)
	stepBytes int
	noReplay  bool // the message outgrew replayMax, or was replayed once
	replayed  bool
}

// Replayed reports whether the message was sent again on a new
// connection after the milter closed the first (a restart).
func (s *Session) Replayed() bool { return s.replayed }

// replayMax bounds what a Session keeps of a message to send it again on
// a new connection, when the milter's is lost in the middle (a restart:
// rspamd closes its connections when it stops). A bigger message in the
// middle of its conversation then gets the default action.
const replayMax = 128 << 10

// Begin takes a connection to the milter (waiting for a free one, riding
// through refusals) and sends the connect and HELO stages of cl.
func (f *Filter) Begin(ctx context.Context, cl Client) (*Session, Verdict, error) {
	fresh := false
	for {
		c, err := f.get(ctx, fresh)
		if err != nil {
			return nil, Verdict{}, err
		}
		s := &Session{f: f, c: c, ctx: ctx, cl: cl}
		reused := c.used
		v, err := s.open(cl)
		if err != nil && reused {
			// An idle connection the milter closed meanwhile (a restart,
			// its own idle timeout). The others idle since then are
			// likely dead too: drop them, and try on a new connection,
			// which rides through a milter still restarting.
			f.Close()
			fresh = true
			continue
		}
		return s, v, err
	}
}

func (s *Session) open(cl Client) (Verdict, error) {
	c := s.c
	m := c.macros
	if c.used {
		if err := s.call(s.f.spec.CommandTimeout, func() error { return c.s.Reset(m) }); err != nil {
			return s.fail("reset", err)
		}
	}
	c.used = true
	m.Set(gm.MacroMTAFQDN, cl.Hostname)
	m.Set(gm.MacroDaemonName, cl.Daemon)
	m.Set(gm.MacroDaemonAddr, cl.Local.Addr().String())
	m.Set(gm.MacroMTAVersion, cl.Version)
	m.Set(gm.MacroRFC1413AuthInfo, cl.Name+" ["+cl.Addr.Addr().String()+"]")
	m.Set(gm.MacroClientAddr, cl.Addr.Addr().String())
	m.Set(gm.MacroClientPort, strconv.Itoa(int(cl.Addr.Port())))
	m.Set(gm.MacroClientName, cl.Name)
	m.Set(gm.MacroClientPTR, cl.Name)
	m.Set(gm.MacroQueueId, cl.QueueID)
	// {auth_type}, {auth_authen} and {auth_author} stay undefined, as
	// Postfix leaves them for a client that did not authenticate: rspamd
	// takes an empty {auth_authen} for an authenticated user.
	if cl.TLSVersion != "" {
		m.Set(gm.MacroTlsVersion, cl.TLSVersion)
		m.Set(gm.MacroCipher, cl.Cipher)
		m.Set(gm.MacroCipherBits, strconv.Itoa(cl.CipherBits))
	}
	fam := gm.FamilyInet
	if cl.Addr.Addr().Is6() {
		fam = gm.FamilyInet6
	}
	v, err := s.act(s.f.spec.CommandTimeout, "connect", func() (*gm.Action, error) {
		return c.s.Conn(cl.Name, fam, cl.Addr.Port(), cl.Addr.Addr().String())
	})
	if err != nil || v.Done() {
		return v, err
	}
	return s.act(s.f.spec.CommandTimeout, "helo", func() (*gm.Action, error) { return c.s.Helo(cl.HELO) })
}

// Mail sends MAIL FROM; from is the address without brackets.
func (s *Session) Mail(from string, args []string) (Verdict, error) {
	return s.step(len(from), s.envelope("mail", from, args,
		[3]gm.MacroName{gm.MacroMailAddr, gm.MacroMailHost, gm.MacroMailMailer}, (*gm.ClientSession).Mail))
}

// Rcpt sends one RCPT TO that mxd accepted. A Reject or Tempfail is for
// this recipient alone: the session goes on with the others.
func (s *Session) Rcpt(to string, args []string) (Verdict, error) {
	v, err := s.step(len(to), s.envelope("rcpt", to, args,
		[3]gm.MacroName{gm.MacroRcptAddr, gm.MacroRcptHost, gm.MacroRcptMailer}, (*gm.ClientSession).Rcpt))
	if err == nil && (v.Kind == Reject || v.Kind == Tempfail) {
		s.verdict = Verdict{}
	}
	return v, err
}

// envelope is the exchange of MAIL or RCPT: the address's macros (its
// address, domain and mailer), then the command.
func (s *Session) envelope(stage, addr string, args []string, macros [3]gm.MacroName,
	send func(*gm.ClientSession, string, string) (*gm.Action, error)) func() (Verdict, error) {
	return func() (Verdict, error) {
		if s.c == nil || s.verdict.Done() {
			return s.verdict, nil
		}
		s.c.macros.Set(macros[0], addr)
		s.c.macros.Set(macros[1], domainOf(addr))
		s.c.macros.Set(macros[2], "smtp")
		return s.act(s.f.spec.CommandTimeout, stage, func() (*gm.Action, error) {
			return send(s.c.s, "<"+addr+">", strings.Join(args, " "))
		})
	}
}

// Data sends the start of the data (after 354, or the first BDAT).
func (s *Session) Data() (Verdict, error) {
	return s.step(0, func() (Verdict, error) {
		if s.c == nil {
			return s.verdict, nil
		}
		return s.act(s.f.spec.CommandTimeout, "data", s.c.s.DataStart)
	})
}

// Header sends the fields of a header section, then its end.
func (s *Session) Header(fields []Field) (Verdict, error) {
	n := 0
	for _, fl := range fields {
		n += len(fl.Raw)
	}
	return s.step(n, func() (Verdict, error) { return s.header(fields) })
}

func (s *Session) header(fields []Field) (Verdict, error) {
	if s.c == nil {
		return s.verdict, nil
	}
	for _, fl := range fields {
		v, err := s.act(s.f.spec.ContentTimeout, "header", func() (*gm.Action, error) {
			return s.c.s.HeaderField(fl.Name, fl.value(), nil)
		})
		if err != nil || v.Done() {
			return v, err
		}
	}
	return s.act(s.f.spec.ContentTimeout, "eoh", s.c.s.HeaderEnd)
}

// chunkMax is the largest body chunk of the protocol (SMFIC_BODY).
const chunkMax = int(gm.DataSize64K)

// Body sends a piece of the body, in chunks the protocol allows.
func (s *Session) Body(p []byte) (Verdict, error) {
	if !s.noReplay && s.stepBytes+len(p) <= replayMax {
		p = bytes.Clone(p) // the caller reuses its buffer
	}
	return s.step(len(p), func() (Verdict, error) { return s.bodyChunks(p) })
}

func (s *Session) bodyChunks(p []byte) (Verdict, error) {
	for len(p) > 0 && !s.verdict.Done() && s.c != nil && !s.c.s.Skip() {
		n := min(len(p), chunkMax)
		chunk := p[:n]
		p = p[n:]
		s.body = true
		v, err := s.act(s.f.spec.ContentTimeout, "body", func() (*gm.Action, error) { return s.c.s.BodyChunk(chunk) })
		if err != nil || v.Done() {
			return v, err
		}
	}
	return s.verdict, nil
}

// End sends the end of the message and returns the milter's changes and
// its verdict; the connection goes back to the pool. Changes mxd does not
// apply (body, sender, recipients) are counted in ignored.
func (s *Session) End() (changes []Change, ignored []string, v Verdict, err error) {
	if s.c == nil || s.verdict.Done() {
		s.release(true)
		return nil, nil, s.verdict, nil
	}
	if !s.body {
		// An empty body: go-milter ends a message only after a body
		// chunk, so the milter gets one of no bytes.
		s.body = true
		v, err := s.act(s.f.spec.ContentTimeout, "body", func() (*gm.Action, error) { return s.c.s.BodyChunk(nil) })
		if err != nil {
			return nil, nil, v, err
		}
		if v.Done() {
			s.Abort()
			return nil, nil, v, nil
		}
	}
	var mods []gm.ModifyAction
	var act *gm.Action
	err = s.call(s.f.spec.ContentTimeout, func() error {
		var err error
		mods, act, err = s.c.s.End()
		return err
	})
	if err != nil {
		v, err = s.fail("end", err)
		if s.lost(err) {
			if v, err = s.replay(); err == nil && !v.Done() {
				return s.End()
			}
		}
		return nil, nil, v, err
	}
	v, err = verdictOf(act)
	if err != nil {
		v, err = s.fail("end", err)
		return nil, nil, v, err
	}
	s.ended = true
	s.verdict = v
	for _, m := range mods {
		switch m.Type {
		case gm.ActionAddHeader:
			changes = append(changes, Change{Op: AddHeader, Name: m.HeaderName, Value: m.HeaderValue})
		case gm.ActionInsertHeader:
			changes = append(changes, Change{Op: InsertHeader, Index: int(m.HeaderIndex), Name: m.HeaderName, Value: m.HeaderValue})
		case gm.ActionChangeHeader:
			changes = append(changes, Change{Op: ChangeHeader, Index: int(m.HeaderIndex), Name: m.HeaderName, Value: m.HeaderValue})
		case gm.ActionQuarantine:
			if v.Kind == Continue || v.Kind == Accept {
				v = Verdict{Kind: Quarantine, Reason: m.Reason}
			}
		case gm.ActionReplaceBody:
			ignored = append(ignored, "replace_body")
		case gm.ActionChangeFrom:
			ignored = append(ignored, "change_from")
		case gm.ActionAddRcpt:
			ignored = append(ignored, "add_rcpt")
		case gm.ActionDelRcpt:
			ignored = append(ignored, "delete_rcpt")
		}
	}
	s.verdict = v
	s.release(true)
	return changes, ignored, v, nil
}

// Abort ends the message early (RSET, a refusal, a lost client) and
// gives the connection back.
func (s *Session) Abort() {
	if s.c == nil {
		return
	}
	if s.ended {
		s.release(true)
		return
	}
	err := s.call(s.f.spec.CommandTimeout, func() error { return s.c.s.Abort(nil) })
	s.release(err == nil)
}

func (s *Session) release(ok bool) {
	if s.c != nil {
		s.f.put(s.c, ok)
		s.c = nil
	}
}

// act runs one exchange that ends with an action.
func (s *Session) act(d time.Duration, stage string, fn func() (*gm.Action, error)) (Verdict, error) {
	if s.c == nil || s.verdict.Done() {
		return s.verdict, nil
	}
	var a *gm.Action
	err := s.call(d, func() error {
		var err error
		a, err = fn()
		return err
	})
	if err != nil {
		return s.fail(stage, err)
	}
	v, err := verdictOf(a)
	if err != nil {
		return s.fail(stage, err)
	}
	s.verdict = v
	return v, nil
}

// step runs one exchange of the message and keeps it for a replay when
// the milter lets it pass. When the connection is lost (the milter
// restarted), the message so far goes again on a new connection, once,
// riding through the restart as Begin does, and then this exchange.
func (s *Session) step(n int, run func() (Verdict, error)) (Verdict, error) {
	v, err := run()
	if err != nil && s.lost(err) {
		if v, err = s.replay(); err == nil && !v.Done() {
			v, err = run()
		}
	}
	if err == nil && !v.Done() && !s.noReplay {
		if s.stepBytes += n; s.stepBytes > replayMax {
			s.noReplay, s.steps = true, nil
		} else {
			s.steps = append(s.steps, run)
		}
	}
	return v, err
}

// lost reports whether err is a connection the milter closed (a restart),
// as against a timeout or nonsense, and the message can be sent again.
func (s *Session) lost(err error) bool {
	var me *Error
	if s.noReplay || !errors.As(err, &me) || me.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// replay sends the message so far on a new connection: the other idle
// connections are dropped (a restart closed them too), a new one is
// opened (riding through refusals for RideThrough), and the connect,
// HELO and every step the milter let pass go again.
func (s *Session) replay() (Verdict, error) {
	s.noReplay, s.replayed = true, true // once per message
	s.f.Close()
	c, err := s.f.get(s.ctx, true)
	if err != nil {
		return Verdict{}, &Error{Milter: s.f.spec.Name, Stage: "replay", Err: err}
	}
	s.c, s.verdict, s.body = c, Verdict{}, false
	v, err := s.open(s.cl)
	for _, st := range s.steps {
		if err != nil || v.Done() {
			break
		}
		v, err = st()
	}
	s.steps = nil
	return v, err
}

// call runs fn under the stage's deadline.
func (s *Session) call(d time.Duration, fn func() error) error {
	s.c.wc.stage(d)
	return fn()
}

// fail closes the connection after an error.
func (s *Session) fail(stage string, err error) (Verdict, error) {
	s.release(false)
	return Verdict{}, &Error{Milter: s.f.spec.Name, Stage: stage, Err: err}
}

// Error is a milter's failure: it is down, slow, closed the connection or
// answered what the protocol does not allow.
type Error struct {
	Milter, Stage string
	Err           error
}

func (e *Error) Error() string {
	return fmt.Sprintf("milter %s at %s: %v", e.Milter, e.Stage, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the milter was too slow.
func (e *Error) Timeout() bool {
	var te interface{ Timeout() bool }
	return errors.As(e.Err, &te) && te.Timeout()
}

// verdictOf reads the library's action.
func verdictOf(a *gm.Action) (Verdict, error) {
	if a == nil {
		return Verdict{}, errors.New("no action")
	}
	switch a.Type {
	case gm.ActionContinue, gm.ActionSkip:
		return Verdict{Kind: Continue}, nil
	case gm.ActionAccept:
		return Verdict{Kind: Accept}, nil
	case gm.ActionDiscard:
		return Verdict{Kind: Discard}, nil
	case gm.ActionReject:
		return Verdict{Kind: Reject}, nil
	case gm.ActionTempFail:
		return Verdict{Kind: Tempfail}, nil
	case gm.ActionRejectWithCode:
		switch {
		case a.SMTPCode >= 400 && a.SMTPCode < 500:
			return Verdict{Kind: Tempfail, Reply: a.SMTPReply}, nil
		case a.SMTPCode >= 500 && a.SMTPCode < 600:
			return Verdict{Kind: Reject, Reply: a.SMTPReply}, nil
		}
		return Verdict{}, fmt.Errorf("reply code %d: not 4xx or 5xx", a.SMTPCode)
	}
	return Verdict{}, fmt.Errorf("unexpected action %v", a.Type)
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
