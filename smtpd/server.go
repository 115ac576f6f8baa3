package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/queue"
	"mxq/smtpd/milter"
)

// Queue is where a Server puts each message. The message's data goes to
// a Spool while it arrives, a batch at a time, so that a session holds a
// batch at most whatever the message's size; the Spool then commits the
// message with its record. QueueOf gives the Queue of a *queue.Queue.
type Queue interface {
	// NewSpool starts the data of message id. ttl is how long what is
	// appended may outlive the last Append, if the message is neither
	// committed nor aborted.
	NewSpool(id string, ttl time.Duration) Spool
}

// Spool is one message's data on its way into the queue; *queue.Spool
// is one. It is used by one goroutine.
type Spool interface {
	// Append stores chunks at the end of the data. After an error that
	// passes (queue.Transient) it may be called again with the same
	// chunks.
	Append(ctx context.Context, chunks ...[]byte) error
	// Prefix counts p as the start of the client's data that is kept out
	// of the spool (the header section a milter may change, sent with
	// the commit instead): it is hashed for dedup before what is
	// appended. Called at most once, before the first Append.
	Prefix(p []byte)
	// Commit stores m durably: its header, what was appended, then its
	// Chunks. A nil error means the message may be acknowledged with
	// 250. After an error that passes it may be called again.
	Commit(ctx context.Context, m *queue.Message) (queue.Result, error)
	// Abort drops what was appended, when the message will not be
	// committed.
	Abort(ctx context.Context) error
}

// QueueOf is the Queue of q: each message's data goes to a queue.Spool.
func QueueOf(q *queue.Queue) Queue { return redisQueue{q} }

type redisQueue struct{ q *queue.Queue }

func (r redisQueue) NewSpool(id string, ttl time.Duration) Spool { return r.q.NewSpool(id, ttl) }

// Deps are the live objects a Server works with, made by its caller.
type Deps struct {
	// Queue takes every message. Required.
	Queue Queue
	// Recipients checks each recipient at RCPT. Required.
	Recipients *Recipients
	// Logger gets the sessions' lines. Required.
	Logger *slog.Logger
	// Metrics are the server's metrics. Nil: kept, but not registered.
	Metrics *Metrics
	// TLS enables STARTTLS with this configuration (TLS 1.2 or later is
	// enforced). Nil: no STARTTLS.
	TLS *tls.Config
	// Auth computes the Authentication-Results of each message. Nil: no
	// checks and no header (the list software then sees none of ours).
	Auth Authenticator
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server is an SMTP receiver. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	queue   Queue
	rcpts   *Recipients
	metrics *Metrics
	auth    Authenticator // nil: no checks
	smtp    *smtp.Server

	draining atomic.Bool
	closing  atomic.Bool
	lastEnq  atomic.Int64 // unix nanoseconds of the last enqueue
	waiting  atomic.Int64 // sessions waiting for the queue (rideThrough)
	// shutdownBy is the deadline of a Shutdown in unix nanoseconds, 0 if
	// none: sessions waiting for the queue stop in time to answer.
	shutdownBy atomic.Int64

	limits  *limiter    // rates per client, waits for errors (limits.go)
	budget  *budget     // bytes of message data in memory
	blocks  *blockPool  // the blocks they are read into
	writers *writerGate // turns to write batches of big messages (writers.go)
	milters []*milter.Filter

	mu    sync.Mutex
	conns map[*conn]struct{}
	perIP map[netip.Addr]int // by Config.clientKey
	done  chan struct{}      // closed by Shutdown/Close
}

// maxLineLength bounds a line, CRLF included, of a command (RFC 5321
// §4.5.3.1.4 allows 512 octets) and of message data (§4.5.3.1.6: 1000),
// with room for clients that exceed them a little, as go-smtp's default
// does. A command over it closes the session (500 5.4.0); a message with
// a longer line is read to its end and refused (replyLongLine): list
// software behind mxd, and the hops after it, would cut or refuse it.
const maxLineLength = 2000

// New returns a Server with the settings cfg, which it uses as they are
// (see Config), and the live objects d.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("smtpd: %w", err)
	}
	if d.Queue == nil || d.Recipients == nil || d.Logger == nil {
		return nil, errors.New("smtpd: Deps needs a Queue, Recipients and a Logger")
	}
	cfg.Domains = foldDomains(cfg.Domains)
	metrics := d.Metrics
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Server{
		cfg: cfg, log: d.Logger, queue: d.Queue, rcpts: d.Recipients, metrics: metrics, auth: d.Auth,
		conns: make(map[*conn]struct{}),
		perIP: make(map[netip.Addr]int),
		done:  make(chan struct{}),
	}
	s.limits = newLimiter(&s.cfg, metrics.limits)
	s.budget = newBudget(cfg.MemoryBudget)
	s.budget.onUse = func(n int64) { metrics.budgetUsed.Set(float64(n)) }
	s.budget.onWait = func(d int) { metrics.budgetWait.Add(float64(d)) }
	s.budget.onEvict = metrics.evictions.Inc
	metrics.budgetLimit.Set(float64(cfg.MemoryBudget))
	s.blocks = newBlockPool(cfg.MemoryBudget)
	s.writers = newWriterGate(cfg.SpoolWriters, cfg.SpoolWritersShared, smallQuiet, func(n int) { metrics.spoolWriters.Set(float64(n)) })
	ss := smtp.NewServer(backend{s})
	ss.Domain = cfg.Hostname
	ss.MaxMessageBytes = cfg.MaxMessageBytes
	// go-smtp answers the recipient over the limit itself; the limit is
	// checked in Rcpt for 452 4.5.3 instead (smtpd/reply.go).
	ss.MaxRecipients = 0
	ss.MaxLineLength = maxLineLength
	ss.EnableSMTPUTF8 = true
	// Bare CR, bare LF and NUL are judged on the wire bytes of each
	// message, DATA and BDAT alike (see third_party/README.md).
	ss.StrictLineEndings = true
	ss.EnableDSN = true            // RET, ENVID, NOTIFY, ORCPT are recorded for the list software
	ss.ErrorLog = goSMTPLog{s.log} // a panic in a session is logged; sessions log the rest themselves
	ss.OnReply = s.onReply         // error limits (limits.go)
	if d.TLS != nil {
		ss.TLSConfig = s.observedTLS(d.TLS)
	}
	s.smtp = ss
	if err := s.startMilters(); err != nil {
		return nil, err
	}
	return s, nil
}

// observedTLS is c, TLS 1.2 or later, with every handshake counted in the
// metrics (version, resumed or not, and its time from the ClientHello).
// Each handshake gets its own copy of the configuration that c gives for
// it; the session ticket keys stay c's (or those set on the copy by c's
// GetConfigForClient), so resumption is not affected.
func (s *Server) observedTLS(c *tls.Config) *tls.Config {
	outer := c.Clone()
	outer.MinVersion = max(outer.MinVersion, tls.VersionTLS12)
	inner, base := c.GetConfigForClient, outer.Clone()
	base.GetConfigForClient = nil
	outer.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		start := time.Now()
		hc := base
		if inner != nil {
			ic, err := inner(chi)
			if err != nil {
				return nil, err
			}
			if ic != nil {
				hc = ic
			}
		}
		hc = hc.Clone()
		hc.MinVersion = max(hc.MinVersion, tls.VersionTLS12)
		verify := hc.VerifyConnection
		hc.VerifyConnection = func(cs tls.ConnectionState) error {
			s.metrics.handshake(cs, time.Since(start))
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		return hc, nil
	}
	return outer
}

// spoolSlot waits for a turn to write to the queue's spool.
func (s *Server) spoolSlot(ctx context.Context) error {
	return s.writers.acquire(ctx)
}

// spoolDone ends a turn taken with spoolSlot.
func (s *Server) spoolDone() {
	s.writers.release()
}

// smallQuiet is how long after a small message's commit big messages'
// batches keep to SpoolWritersShared writers.
const smallQuiet = time.Second

// MemoryHeld is the bytes of message data the sessions hold now, out of
// MemoryBudget.
func (s *Server) MemoryHeld() int64 { return s.budget.inUse() }

// Serve accepts connections on l until Shutdown or Close. It may be
// called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	err := s.smtp.Serve(s.newGate(l))
	if s.closing.Load() {
		return ErrServerClosed
	}
	return err
}

// gate is the listener go-smtp accepts from. Its own loop accepts from the
// real listener; each connection is then prepared on its own goroutine
// (a PROXY header read from a trusted proxy, the admission checks), so a
// slow proxy or client never holds up the others. Connections turned away
// (draining, shutting down, over a cap) get 421 before go-smtp sees them.
type gate struct {
	net.Listener
	s     *Server
	ready chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func (s *Server) newGate(l net.Listener) *gate {
	g := &gate{Listener: l, s: s, ready: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go g.loop()
	return g
}

func (g *gate) loop() {
	var delay time.Duration
	for {
		nc, err := g.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				g.s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			g.errc <- err
			return
		}
		delay = 0
		go g.prepare(nc)
	}
}

func (g *gate) prepare(nc net.Conn) {
	if g.s.trustedProxy(nc.RemoteAddr()) {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		ap, err := readProxyHeader(nc)
		nc.SetReadDeadline(time.Time{})
		if err != nil {
			g.s.log.Warn("proxy header", "proxy", nc.RemoteAddr().String(), "err", err)
			g.s.metrics.refused.WithLabelValues("bad_proxy_header").Inc()
			nc.Close()
			return
		}
		if ap.IsValid() {
			nc = &proxiedConn{Conn: nc, remote: net.TCPAddrFromAddrPort(ap)}
		}
	}
	c, rejection := g.s.admit(nc)
	if rejection != nil {
		refuse(nc, rejection)
		return
	}
	select {
	case g.ready <- c:
	case <-g.done:
		c.Close()
	}
}

func (g *gate) Accept() (net.Conn, error) {
	select {
	case c := <-g.ready:
		return c, nil
	case err := <-g.errc:
		return nil, err
	case <-g.done:
		return nil, net.ErrClosed
	}
}

func (g *gate) Close() error {
	g.once.Do(func() { close(g.done) })
	return g.Listener.Close()
}

// trustedProxy reports whether a may send a PROXY header.
func (s *Server) trustedProxy(a net.Addr) bool {
	ip := remoteIP(a)
	for _, p := range s.cfg.ProxyFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refuse answers a connection that is not admitted and closes it.
func refuse(nc net.Conn, r *smtp.SMTPError) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, replyLine(r))
	nc.Close()
}

func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// admit registers nc as a session, or says why not.
func (s *Server) admit(nc net.Conn) (*conn, *smtp.SMTPError) {
	ip := s.cfg.clientKey(remoteIP(nc.RemoteAddr()))
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing.Load():
		s.metrics.refused.WithLabelValues("shutdown").Inc()
		return nil, replyShutdown
	case s.draining.Load():
		s.metrics.refused.WithLabelValues("draining").Inc()
		return nil, replyDraining
	case len(s.conns) >= s.cfg.MaxConnections:
		s.metrics.refused.WithLabelValues("max_connections").Inc()
		return nil, replyTooMany
	case s.perIP[ip] >= s.cfg.MaxConnectionsPerIP:
		s.metrics.refused.WithLabelValues("max_connections_per_ip").Inc()
		return nil, replyTooManyFrom
	case s.overConnectionRate(ip):
		return nil, replyConnectionRate
	}
	c := newConn(nc, &s.cfg)
	c.onClose = func() { s.release(c) }
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	s.metrics.sessions.Inc()
	s.metrics.accepted.Inc()
	return c, nil
}

// release forgets a session's connection.
func (s *Server) release(c *conn) {
	ip := s.cfg.clientKey(remoteIP(c.RemoteAddr()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.metrics.sessions.Dec()
}

// Sessions is the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// SetDraining turns drain mode on or off. While on, new connections get
// 421 4.3.2 and sessions are closed when they are between transactions.
func (s *Server) SetDraining(on bool) {
	if s.draining.Swap(on) != on {
		s.log.Info("drain", "draining", on)
		s.metrics.draining.Set(b2f(on))
	}
	if on {
		s.limits.wakeAll()
		s.closeIdle(replyDraining)
	}
}

// Draining reports whether drain mode is on.
func (s *Server) Draining() bool { return s.draining.Load() }

// closeIdle closes, with r, every session that is waiting between
// transactions.
func (s *Server) closeIdle(r *smtp.SMTPError) {
	text := replyLine(r)
	for _, c := range s.snapshot() {
		c.closeIfIdle(text)
	}
}

// snapshot returns the sessions' connections.
func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Shutdown stops accepting connections, lets transactions in flight finish,
// closes sessions with 421 as they become idle, and returns when none is
// left. When ctx ends first, the remaining sessions are cut and ctx's
// error is returned: their transactions were not acknowledged, so the
// senders retry.
func (s *Server) Shutdown(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		s.shutdownBy.Store(d.UnixNano())
	}
	if s.closing.Swap(true) {
		return ErrServerClosed
	}
	close(s.done)
	s.log.Info("shutting down", "sessions", s.Sessions())
	shut := make(chan error, 1)
	go func() { shut <- s.smtp.Shutdown(ctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle(replyShutdown)
		select {
		case err := <-shut:
			if err != nil {
				s.cutAll()
			}
			return err
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every session at once.
func (s *Server) Close() error {
	if !s.closing.Swap(true) {
		close(s.done)
	}
	err := s.smtp.Close()
	s.cutAll()
	s.closeMilters()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// cutAll closes every session's connection.
func (s *Server) cutAll() {
	for _, c := range s.snapshot() {
		c.Close()
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// goSMTPLog takes go-smtp's own log lines. A panic in a session (go-smtp
// recovers it, answers 421 and closes the connection) is an error an
// operator must see, with its stack; the other lines, a connection that
// ended with a read error, say what the session's own log line says
// already, and go to debug.
type goSMTPLog struct{ log *slog.Logger }

func (l goSMTPLog) Printf(format string, v ...any) { l.line(fmt.Sprintf(format, v...)) }
func (l goSMTPLog) Println(v ...any)               { l.line(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l goSMTPLog) line(s string) {
	if strings.HasPrefix(s, "panic ") {
		l.log.Error("session panicked", "detail", s)
		return
	}
	l.log.Debug("smtp server", "detail", s)
}
