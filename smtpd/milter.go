package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/queue"
	"mxq/setting"
	"mxq/smtpd/milter"
)

// MilterConfig is the content filters every message passes before mxd
// answers its data (docs/filtering.md).
type MilterConfig struct {
	// Milters are the filters, applied in order, as Postfix's
	// smtpd_milters writes them: "inet:127.0.0.1:11332", "unix:/path",
	// or "{ inet:host:port, default_action=accept, connect_timeout=5s,
	// command_timeout=5s, content_timeout=60s }" for settings of their own.
	Milters []string
	// ConnectTimeout, CommandTimeout and ContentTimeout bound the
	// connection to a milter, each reply before the data, and each reply
	// during and at the end of the data (Postfix's milter_*_timeout).
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	ContentTimeout time.Duration
	// DefaultAction is what a milter that fails is taken to say:
	// "tempfail" (451 4.7.1), "accept" (go on without it) or "reject"
	// (550 5.7.1).
	DefaultAction string
	// MaxConnections bounds the connections to each milter; each serves
	// one message at a time and is reused for the next.
	MaxConnections int
	// RideThrough is how long a new message waits for a milter that
	// refuses connections (a restart) before its default action applies.
	RideThrough time.Duration
}

// milterDefaults are Postfix's (milter_connect_timeout and the others).
func milterDefaults() MilterConfig {
	return MilterConfig{
		ConnectTimeout: 30 * time.Second,
		CommandTimeout: 30 * time.Second,
		ContentTimeout: 300 * time.Second,
		DefaultAction:  "tempfail",
		MaxConnections: 64,
		RideThrough:    10 * time.Second,
	}
}

// Check reports each milter setting a Server cannot use, every milter's
// entry among them, as a *setting.Error. It fills nothing in; a
// RideThrough of 0 turns the wait off.
func (c *MilterConfig) Check() error {
	ck := setting.For(c)
	for _, v := range []*time.Duration{&c.ConnectTimeout, &c.CommandTimeout, &c.ContentTimeout} {
		setting.Positive(ck, v)
	}
	setting.Positive(ck, &c.MaxConnections)
	setting.NotNegative(ck, &c.RideThrough)
	if _, err := milter.ParseAction(c.DefaultAction); err != nil {
		ck.Add(&c.DefaultAction, "want tempfail, accept or reject")
	}
	for _, m := range c.Milters {
		if _, err := milter.Parse(m, milter.Spec{}); err != nil {
			ck.Add(&c.Milters, err.Error())
		}
	}
	return ck.Err()
}

// specs reads the milters' entries.
func (c MilterConfig) specs() ([]milter.Spec, error) {
	act, err := milter.ParseAction(c.DefaultAction)
	if err != nil {
		return nil, fmt.Errorf("milter_%w", err)
	}
	base := milter.Spec{ConnectTimeout: c.ConnectTimeout, CommandTimeout: c.CommandTimeout, ContentTimeout: c.ContentTimeout,
		DefaultAction: act, MaxConnections: c.MaxConnections, RideThrough: c.RideThrough}
	var out []milter.Spec
	for _, m := range c.Milters {
		sp, err := milter.Parse(m, base)
		if err != nil {
			return nil, fmt.Errorf("milters: %w", err)
		}
		out = append(out, sp)
	}
	return out, nil
}

// startMilters makes the server's filters; it opens no connection yet.
func (s *Server) startMilters() error {
	specs, err := s.cfg.Milter.specs()
	if err != nil {
		return err
	}
	for _, sp := range specs {
		s.milters = append(s.milters, milter.New(sp))
	}
	return nil
}

// MiltersWaiting returns how many messages wait for a milter now: for a
// free connection to it, or riding through its restart.
func (s *Server) MiltersWaiting() int {
	n := 0
	for _, f := range s.milters {
		n += f.Waiting()
	}
	return n
}

// closeMilters closes the idle connections to the milters.
func (s *Server) closeMilters() {
	for _, f := range s.milters {
		f.Close()
	}
}

// milterTx is one transaction's conversation with the milters.
type milterTx struct {
	id      string // the queue id, told to milters as {i} from MAIL on
	runs    []*milterRun
	discard string // the milter that said discard
	hold    string // why milters quarantined the message; empty if none did
	// The header section, kept out of the spool while the milters may
	// change it (see heldHeader).
	header []byte
	sep    bool // header ends with the empty line
	edits  []milter.Change
}

// milterRun is one milter's part in a transaction.
type milterRun struct {
	f      *milter.Filter
	s      *milter.Session // nil once the milter has decided or failed
	result string          // for the transaction's log line
}

// live reports whether any milter still wants the transaction's stages.
func (tx *milterTx) live() bool {
	for _, r := range tx.runs {
		if r.s != nil {
			return true
		}
	}
	return false
}

// summary is each milter's verdict, for the transaction's log line.
func (tx *milterTx) summary() string {
	parts := make([]string, len(tx.runs))
	for i, r := range tx.runs {
		res := r.result
		if res == "" {
			res = "continue"
		}
		parts[i] = r.f.Spec().Name + "=" + res
	}
	return strings.Join(parts, " ")
}

// milterClient is what the milters are told of this session.
func (ss *session) milterClient(id string) milter.Client {
	cl := milter.Client{
		Name: "unknown", HELO: ss.c.Hostname(), Hostname: ss.s.cfg.Hostname, Daemon: "mxd",
		Version: "mxd " + ss.s.cfg.Version, QueueID: id,
	}
	if ta, ok := ss.wc.RemoteAddr().(*net.TCPAddr); ok {
		cl.Addr = ta.AddrPort()
		cl.Addr = netip.AddrPortFrom(cl.Addr.Addr().Unmap(), cl.Addr.Port())
	}
	if ta, ok := ss.wc.LocalAddr().(*net.TCPAddr); ok {
		cl.Local = ta.AddrPort()
	}
	if st, ok := ss.c.TLSConnectionState(); ok {
		cl.TLSVersion = tlsVersionMacro(st.Version)
		cl.Cipher = tls.CipherSuiteName(st.CipherSuite)
		cl.CipherBits = 256
		if strings.Contains(cl.Cipher, "128") {
			cl.CipherBits = 128
		}
	}
	return cl
}

// tlsVersionMacro is {tls_version} as Postfix sends it, OpenSSL's name
// of the version ("TLSv1.3"), which milters compare with.
func tlsVersionMacro(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

// milterMail starts the milters' part of a transaction: connect, HELO and
// MAIL. A refusal is the reply to MAIL.
func (ss *session) milterMail(from string, opts *smtp.MailOptions) *smtp.SMTPError {
	if len(ss.s.milters) == 0 {
		return nil
	}
	tx := &milterTx{id: queue.NewID(time.Now())}
	ss.milter = tx
	ctx := context.Background()
	cl := ss.milterClient(tx.id)
	args := mailArgs(ss.fromParams)
	for _, f := range ss.s.milters {
		run := &milterRun{f: f}
		tx.runs = append(tx.runs, run)
		t0 := time.Now()
		s, v, err := f.Begin(ctx, cl)
		run.s = s
		if r := ss.milterJudge(run, "connect", t0, v, err); r != nil {
			ss.milterAbort()
			return r
		}
		if run.s == nil {
			continue // accepted, or failed with accept as its default
		}
		t0 = time.Now()
		v, err = run.s.Mail(from, args)
		if r := ss.milterJudge(run, "mail", t0, v, err); r != nil {
			ss.milterAbort()
			return r
		}
	}
	return nil
}

func mailArgs(p map[string]string) []string {
	var out []string
	for k, v := range p {
		if v == "" {
			out = append(out, k)
		} else {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// milterRcpt passes a recipient mxd accepted to the milters. A refusal
// is the reply to this RCPT alone (as in Postfix).
func (ss *session) milterRcpt(to string, params map[string]string) *smtp.SMTPError {
	tx := ss.milter
	if tx == nil {
		return nil
	}
	args := mailArgs(params)
	for _, run := range tx.runs {
		if run.s == nil {
			continue
		}
		t0 := time.Now()
		v, err := run.s.Rcpt(to, args)
		if err == nil && (v.Kind == milter.Reject || v.Kind == milter.Tempfail) {
			// This recipient only: the milter goes on with the others.
			ss.s.metrics.milter.stage(run.f.Spec().Name, "rcpt", t0)
			ss.s.metrics.milter.verdicts.WithLabelValues(run.f.Spec().Name, "rcpt_"+v.Kind.String()).Inc()
			return milterReply(v)
		}
		if r := ss.milterJudge(run, "rcpt", t0, v, err); r != nil {
			return r
		}
	}
	return nil
}

// milterJudge records what a milter said at a stage (or its failure, as
// its default action), ends its part when it decided, and returns the
// reply the verdict makes, nil to go on.
func (ss *session) milterJudge(run *milterRun, stage string, t0 time.Time, v milter.Verdict, err error) *smtp.SMTPError {
	m := ss.s.metrics.milter
	name := run.f.Spec().Name
	m.stage(name, stage, t0)
	if err != nil {
		kind := faultKind(err)
		m.faults.WithLabelValues(name, kind).Inc()
		act := run.f.Spec().DefaultAction
		ss.log.Warn("milter failed", "milter", name, "stage", stage, "default_action", act.String(), "err", err)
		run.s = nil
		run.result = "fault:" + act.String()
		m.verdicts.WithLabelValues(name, "default_"+act.String()).Inc()
		switch act {
		case milter.Accept:
			return nil
		case milter.Reject:
			return replyMilterReject
		}
		return replyMilterTempfail
	}
	if !v.Done() {
		return nil
	}
	m.verdicts.WithLabelValues(name, v.Kind.String()).Inc()
	run.result = v.Kind.String()
	if run.s != nil {
		run.s.Abort()
		run.s = nil
	}
	switch v.Kind {
	case milter.Discard:
		ss.milter.discard = name
		return nil
	case milter.Accept, milter.Quarantine:
		return nil // a quarantine is the end of data's (milterEnd)
	}
	return milterReply(v)
}

// faultKind names a milter's failure for the metrics.
func faultKind(err error) string {
	var me *milter.Error
	switch {
	case errors.As(err, &me) && me.Timeout():
		return "timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "busy"
	case errors.As(err, &me):
		return "protocol"
	}
	return "unavailable"
}

// milterReply is the reply a Reject or Tempfail verdict
// makes: the milter's own text when it gave one (code and enhanced code
// kept in their class), else the named reply.
func milterReply(v milter.Verdict) *smtp.SMTPError {
	def := replyMilterReject
	switch v.Kind {
	case milter.Tempfail:
		def = replyMilterTempfail
	}
	if v.Reply == "" {
		return def
	}
	code, enh, text := parseReply(v.Reply)
	if code/100 != def.Code/100 || text == "" {
		return def
	}
	if enh[0] != code/100 {
		enh = def.EnhancedCode
	}
	return replyMilter(code, enh, text)
}

// parseReply reads "554 5.7.1 text" or its multiline form
// ("554-5.7.1 a\r\n554 5.7.1 b"): the code, the enhanced code (zero
// when absent) and the lines of text joined by "\n", with anything
// unprintable replaced.
func parseReply(s string) (int, smtp.EnhancedCode, string) {
	var code int
	var enh smtp.EnhancedCode
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if len(l) < 3 {
			continue
		}
		c, err := strconv.Atoi(l[:3])
		if err != nil {
			return 0, enh, ""
		}
		code = c
		l = strings.TrimLeft(l[3:], " -")
		if e, rest, ok := strings.Cut(l, " "); ok || e != "" {
			var x, y, z int
			if n, _ := fmt.Sscanf(e, "%d.%d.%d", &x, &y, &z); n == 3 {
				enh = smtp.EnhancedCode{x, y, z}
				l = rest
			}
		}
		lines = append(lines, strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, l))
	}
	return code, enh, strings.Join(lines, "\n")
}

// milterAbort ends every milter's part of the transaction early (RSET,
// a new MAIL, the end of the session, a refusal).
func (ss *session) milterAbort() {
	tx := ss.milter
	if tx == nil {
		return
	}
	for _, run := range tx.runs {
		if run.s != nil {
			run.s.Abort()
			run.s = nil
		}
	}
}

// milterQueueID is the transaction's queue id when milters were told it
// at MAIL, else a new one.
func (ss *session) milterQueueID(now time.Time) string {
	if ss.milter != nil {
		return ss.milter.id
	}
	return queue.NewID(now)
}
