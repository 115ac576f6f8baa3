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
	rcpts      []queue.Recipient
}

func (ss *session) Reset() {
	ss.from, ss.fromSet, ss.fromParams, ss.utf8, ss.rcpts = "", false, nil, false, nil
	ss.wc.setTx(false)
}

func (ss *session) Logout() error {
	ss.wc.setTx(false)
	return nil
}

// Mail starts a transaction. The null sender (bounces) is accepted.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.closing.Load() {
		return replyShutdown
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
	ss.fromParams = mailParams(opts)
	ss.wc.setTx(true)
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

// Rcpt checks a recipient: syntax, local domain, registry, limit.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
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
