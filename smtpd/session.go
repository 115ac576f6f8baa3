package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

type backend struct{ s *Server }

// NewSession is called at the first HELO or EHLO.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	wc := underlying(c)
	if wc == nil {
		return nil, replyLocal
	}
	var id [6]byte
	rand.Read(id[:])
	sid := hex.EncodeToString(id[:])
	if tc, ok := c.Conn().(*tls.Conn); ok {
		wc.setTLSConn(tc)
	}
	remote := remoteIP(wc.RemoteAddr())
	return &session{
		s:      b.s,
		c:      c,
		wc:     wc,
		id:     sid,
		remote: remote.String(),
		log:    b.s.log.With("session", sid, "remote", remote.String()),
	}, nil
}

// underlying finds our conn below go-smtp's connection (and below TLS).
func underlying(c *smtp.Conn) *conn {
	switch nc := c.Conn().(type) {
	case *conn:
		return nc
	case *tls.Conn:
		wc, _ := nc.NetConn().(*conn)
		return wc
	}
	return nil
}

// session is one SMTP session. go-smtp calls its methods from one
// goroutine.
type session struct {
	s      *Server
	c      *smtp.Conn
	wc     *conn
	id     string
	remote string
	log    *slog.Logger

	// the transaction
	from       string
	fromSet    bool
	fromParams map[string]string
	utf8       bool
	ehlo       bool // the greeting before MAIL was EHLO, not HELO
	rcpts      []queue.Recipient
	milter     *milterTx // the milters' part; nil without milters
}

func (ss *session) Reset() {
	ss.from, ss.fromSet, ss.fromParams, ss.utf8, ss.ehlo, ss.rcpts = "", false, nil, false, false, nil
	ss.wc.setTx(false)
	ss.milterAbort()
	ss.milter = nil
}

func (ss *session) Logout() error {
	ss.wc.setTx(false)
	ss.milterAbort()
	return nil
}

// Mail starts a transaction. The null sender (bounces) is accepted.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.closing.Load() {
		return replyShutdown
	}
	if ss.fromSet {
		// go-smtp lets a second MAIL through and keeps the recipients
		// it counted, while this session's would start again: DATA
		// could then queue a message without recipients.
		return replyNestedMail
	}
	if r := ss.overRate(rateMessage); r != nil {
		return r
	}
	utf8 := opts != nil && opts.UTF8
	if from != "" {
		a, r := parseAddress(from, utf8)
		if r != nil {
			ss.log.Info("mail refused", "from", from, "code", r.Code)
			return r
		}
		from = a.String()
	}
	ss.Reset()
	ss.from, ss.fromSet, ss.utf8 = from, true, utf8
	// Read here, on the connection's goroutine: a BDAT transfer's
	// Data, which writes the Received field, runs on another.
	ss.ehlo = ss.c.Extended()
	ss.fromParams = mailParams(opts)
	ss.wc.setTx(true)
	if r := ss.milterMail(from, opts); r != nil {
		ss.log.Info("mail refused by milter", "from", from, "code", r.Code, "milters", ss.milter.summary())
		ss.Reset()
		return r
	}
	return nil
}

// mailParams records the MAIL FROM parameters for the queued record.
func mailParams(o *smtp.MailOptions) map[string]string {
	if o == nil {
		return nil
	}
	p := map[string]string{}
	if o.Size > 0 {
		p["SIZE"] = strconv.FormatInt(o.Size, 10)
	}
	if o.Body != "" {
		p["BODY"] = string(o.Body)
	}
	if o.UTF8 {
		p["SMTPUTF8"] = ""
	}
	if o.RequireTLS {
		p["REQUIRETLS"] = ""
	}
	if o.Return != "" {
		p["RET"] = string(o.Return)
	}
	if o.EnvelopeID != "" {
		p["ENVID"] = o.EnvelopeID
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// Rcpt checks a recipient: rate, syntax, local domain, registry, limit.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if r := ss.overRate(rateRecipient); r != nil {
		return r
	}
	// ORCPT's address comes decoded from xtext (RFC 3461 §4) or
	// utf-8-addr-xtext (RFC 6533 §3), once: it is stored decoded, and a
	// consumer uses it as it is (listd's exec destination puts it in the
	// program's environment) or encodes it again. go-smtp refuses
	// malformed xtext and, for "rfc822", anything outside printable
	// ASCII; a "utf-8" address may still decode to a control character
	// or a line separator (\x{09}, \x{85}, \x{2028}).
	if opts != nil && !queue.PrintableParam(opts.OriginalRecipient) {
		ss.log.Info("rcpt refused", "from", ss.from, "rcpt", to, "code", replyBadORCPT.Code)
		return replyBadORCPT
	}
	a, r := parseRecipient(to, ss.utf8)
	if r == nil && a.routed() {
		r = replyRouted
	}
	if r == nil && !ss.s.cfg.localDomain(a.domain) {
		r = replyRelayDenied
	}
	if r == nil && ss.hasRcpt(a) {
		ss.log.Info("duplicate rcpt ignored", "from", ss.from, "rcpt", to)
		return replyDuplicateRcpt
	}
	if r == nil && len(ss.rcpts) >= ss.s.cfg.MaxRecipients {
		r = replyTooManyRcpts
	}
	if r == nil {
		var known bool
		err := ss.s.rideThrough(context.Background(), opRegistry, func(ctx context.Context) error {
			var err error
			known, err = ss.s.rcpts.Known(ctx, a.String())
			return err
		})
		switch {
		case err != nil:
			ss.log.Warn("recipient registry unavailable", "rcpt", to, "err", err)
			r = reply(err)
		case !known:
			r = replyNoSuchUser
		}
	}
	if r == nil {
		r = ss.milterRcpt(a.String(), rcptParams(opts))
	}
	if r != nil {
		ss.log.Info("rcpt refused", "from", ss.from, "rcpt", to, "code", r.Code)
		return r
	}
	ss.rcpts = append(ss.rcpts, queue.Recipient{Addr: a.String(), Params: rcptParams(opts)})
	return nil
}

func rcptParams(o *smtp.RcptOptions) map[string]string {
	if o == nil {
		return nil
	}
	p := map[string]string{}
	if len(o.Notify) > 0 {
		ns := make([]string, len(o.Notify))
		for i, n := range o.Notify {
			ns[i] = string(n)
		}
		p["NOTIFY"] = strings.Join(ns, ",")
	}
	if o.OriginalRecipient != "" {
		p["ORCPT"] = string(o.OriginalRecipientType) + ";" + o.OriginalRecipient
	}
	if len(p) == 0 {
		return nil
	}
	return p
}
