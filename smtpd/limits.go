package smtpd

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Limits per client, after Postfix's anvil and smtpd_*_error_limit.
//
// Rates: new connections, MAIL commands and RCPT commands per client
// (Config.clientKey: an IPv4 address, or an IPv6 prefix) over a sliding
// window of RateTimeUnit. Over a rate, a connection gets 421 4.7.0 at
// connect, MAIL and RCPT get 450 4.7.1. Only what is let through counts,
// so a client that keeps trying is let through at the limit, not below.
//
// Errors: per session, the replies that say the client did something
// wrong (every 5xx, and 4xx with a policy status 4.7.x, such as the rate
// refusals above) since the session began or last queued a message. From
// SoftErrorLimit on, every reply waits ErrorSleepTime times the errors over
// the limit (growing by one step per error, at most maxErrorDelay); at
// HardErrorLimit the session gets 421 4.7.0 after the reply and is closed.
// The wait holds no Redis connection and no memory budget (it is skipped
// while a BDAT transfer holds data), and ends at Shutdown and drain with
// 421 4.3.2.
//
// The state is per MX host and in memory (docs/mxd.md says why): a table
// of two windows, the current one and the one before, so an entry
// expires at the latest two units after its client was last let through.
// Each window holds at most MaxRateClients clients; a client that finds
// it full is not limited until the next window (mxd_limit_untracked_total).

// maxErrorDelay caps one wait for errors: RFC 5321 §4.5.3.2 gives a
// client at least 2 minutes for any reply (DATA initiation), 5 for most.
const maxErrorDelay = time.Minute

// rateKind is what a rate limit counts.
type rateKind int

const (
	rateConnection rateKind = iota
	rateMessage
	rateRecipient
	numRates
)

// hitName is each limit's label in mxd_limit_hits_total.
var hitName = [numRates]string{"connection_rate", "message_rate", "recipient_rate"}

// rateCounts are one client's events of one window.
type rateCounts [numRates]uint32

// rateTable counts each client's events over the current window and the
// one before it.
type rateTable struct {
	limit [numRates]int // <= 0: off
	unit  time.Duration
	max   int // clients in one window
	now   func() time.Time
	m     *limitMetrics

	mu    sync.Mutex
	start time.Time // of the current window
	cur   map[[16]byte]rateCounts
	prev  map[[16]byte]rateCounts
}

func newRateTable(cfg *Config, m *limitMetrics) *rateTable {
	return &rateTable{
		limit: [numRates]int{cfg.ConnectionRateLimit, cfg.MessageRateLimit, cfg.RecipientRateLimit},
		unit:  cfg.RateTimeUnit,
		max:   cfg.MaxRateClients,
		now:   time.Now,
		m:     m,
		cur:   map[[16]byte]rateCounts{},
	}
}

// allow counts an event of kind k for client and reports whether it is
// within the limit. Over the limit the event is not counted.
//
// The rate is an estimate over the last unit: the current window's
// count, plus the previous window's weighted by how much of it the last
// unit still covers. It follows a steady rate exactly and lets no burst
// pass twice the limit.
func (t *rateTable) allow(client netip.Addr, k rateKind) bool {
	limit := t.limit[k]
	if limit <= 0 {
		return true
	}
	key := client.As16()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.rotate(now)
	c, ok := t.cur[key]
	covered := 1 - float64(now.Sub(t.start))/float64(t.unit)
	if float64(c[k])+float64(t.prev[key][k])*covered >= float64(limit) {
		t.m.hits.WithLabelValues(hitName[k]).Inc()
		return false
	}
	if !ok && len(t.cur) >= t.max {
		t.m.untracked.Inc()
		return true
	}
	c[k]++
	t.cur[key] = c
	if !ok {
		t.m.clients.Set(float64(len(t.cur) + len(t.prev)))
	}
	return true
}

// rotate starts a new window once the current one is a unit old; the
// window before it, and every client seen only there, is forgotten.
func (t *rateTable) rotate(now time.Time) {
	switch el := now.Sub(t.start); {
	case el < t.unit:
		return
	case el < 2*t.unit:
		t.prev, t.start = t.cur, t.start.Add(t.unit)
	default:
		t.prev, t.start = nil, now
	}
	t.cur = make(map[[16]byte]rateCounts, len(t.prev))
	t.m.clients.Set(float64(len(t.prev)))
}

// clients is the number of clients the table holds.
func (t *rateTable) clients() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(t.now())
	return len(t.cur) + len(t.prev)
}

// connLimits is what the error limits keep for one connection.
type connLimits struct {
	errors atomic.Int32 // since the session began or last queued a message
	inData atomic.Bool  // Data holds message data (BDAT: between chunks too)
}

// delivered starts the count of errors again: a session that queues
// mail is not probing (Postfix: errors "without delivering mail").
func (cl *connLimits) delivered() { cl.errors.Store(0) }

// countsAsError reports whether a reply says the client erred: every
// 5xx (refused recipients and senders, syntax errors, unknown commands,
// refused messages), and a temporary refusal for policy (4.7.x: the rate
// limits). Other 4xx are mxd's own state (queue, memory, shutdown) or
// the protocol's flow control (452 4.5.3), which a client cannot help.
func countsAsError(code int, enh smtp.EnhancedCode) bool {
	return code >= 500 && code < 600 || code >= 400 && code < 500 && code != 421 && enh[1] == 7
}

// onReply is go-smtp's Server.OnReply: it counts the client's errors,
// makes the client wait past SoftErrorLimit, and ends the session at
// HardErrorLimit, or at shutdown or drain while it makes a client wait.
func (s *Server) onReply(c *smtp.Conn, code int, enh smtp.EnhancedCode) *smtp.SMTPError {
	wc := underlying(c)
	if wc == nil {
		return nil
	}
	cl, cfg := &wc.limits, &s.cfg
	// A 3xx asks for more input (354, 334): ending the session there
	// would leave the client's data unread.
	if n := int(cl.errors.Load()); cfg.SoftErrorLimit > 0 && n >= cfg.SoftErrorLimit && code/100 != 3 && !cl.inData.Load() {
		if r := s.errorDelay(wc, n); r != nil {
			return r
		}
	}
	if !countsAsError(code, enh) {
		return nil
	}
	n := int(cl.errors.Add(1))
	if cfg.SoftErrorLimit > 0 && n == cfg.SoftErrorLimit {
		s.log.Info("error limit", "remote", remoteIP(wc.RemoteAddr()).String(), "limit", "soft", "errors", n)
	}
	if cfg.HardErrorLimit > 0 && n >= cfg.HardErrorLimit {
		s.log.Info("error limit", "remote", remoteIP(wc.RemoteAddr()).String(), "limit", "hard", "errors", n)
		s.metrics.limits.hits.WithLabelValues("hard_error").Inc()
		return replyTooManyErrors
	}
	return nil
}

// errorDelay makes a client that has made n errors wait before its next
// reply: ErrorSleepTime for each error from SoftErrorLimit on. It returns
// the session's last reply when the server shuts down or drains.
func (s *Server) errorDelay(wc *conn, n int) *smtp.SMTPError {
	d, steps := maxErrorDelay, time.Duration(n-s.cfg.SoftErrorLimit+1)
	if s.cfg.ErrorSleepTime < maxErrorDelay/steps {
		d = s.cfg.ErrorSleepTime * steps
	}
	wake := s.limits.wakeChan()
	if r := s.stopping(); r != nil {
		return r
	}
	if d <= 0 {
		return nil
	}
	s.metrics.limits.hits.WithLabelValues("soft_error").Inc()
	s.metrics.limits.delay.Add(d.Seconds())
	// The replies held so far go out first: the client must not wait
	// for answers it could have had.
	wc.flush()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.done:
	case <-wake:
	}
	return s.stopping()
}

// stopping is the last reply of a session the server ends early, or nil.
func (s *Server) stopping() *smtp.SMTPError {
	switch {
	case s.closing.Load():
		return replyShutdown
	case s.draining.Load():
		return replyDraining
	}
	return nil
}

// overRate is the reply to a command of kind k (MAIL, RCPT) from a
// client over its rate, or nil.
func (ss *session) overRate(k rateKind) *smtp.SMTPError {
	if ss.s.limits.rates.allow(ss.s.cfg.clientKey(remoteIP(ss.wc.RemoteAddr())), k) {
		return nil
	}
	ss.log.Info("rate limit", "limit", hitName[k], "from", ss.from)
	if k == rateMessage {
		return replyMessageRate
	}
	return replyRecipientRate
}

// overConnectionRate reports whether a new connection from client is
// over its rate. Called from admit.
func (s *Server) overConnectionRate(client netip.Addr) bool {
	if s.limits.rates.allow(client, rateConnection) {
		return false
	}
	s.metrics.refused.WithLabelValues("connection_rate").Inc()
	return true
}

// limiter is the server's limits: the rate table, and the channel that
// wakes sessions waiting for their errors when the host starts to drain.
type limiter struct {
	rates *rateTable

	mu   sync.Mutex
	wake chan struct{}
}

func newLimiter(cfg *Config, m *limitMetrics) *limiter {
	return &limiter{rates: newRateTable(cfg, m), wake: make(chan struct{})}
}

func (l *limiter) wakeChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// wakeAll ends every wait for errors in progress (drain begins).
func (l *limiter) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wake)
	l.wake = make(chan struct{})
}

// limitMetrics are the metrics of the limits.
type limitMetrics struct {
	hits      *prometheus.CounterVec
	delay     prometheus.Counter
	clients   prometheus.Gauge
	untracked prometheus.Counter
}

// newLimitMetrics creates the metrics and registers them with reg (if
// not nil).
func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	f := promauto.With(reg)
	return &limitMetrics{
		hits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_limit_hits_total", Help: "Limits that fired, by limit: connection_rate (421 at connect), message_rate (450 at MAIL), recipient_rate (450 at RCPT), soft_error (a reply delayed), hard_error (421, session closed).",
		}, []string{"limit"}),
		delay: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_limit_error_delay_seconds_total", Help: "Time replies were delayed for clients past soft_error_limit.",
		}),
		clients: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_limit_clients", Help: "Client addresses (IPv6 prefixes) the rate limits keep counts for.",
		}),
		untracked: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_limit_untracked_total", Help: "Events let through without counting because the rate table was full (max_rate_clients).",
		}),
	}
}
