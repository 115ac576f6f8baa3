package smtpd

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// conn is the connection go-smtp serves: the client's socket with a stack
// of layers, one job each, each in its own file.
//
// A read from go-smtp (or from its TLS layer) goes down:
//
//	readAhead      bulk data in fewer system calls      conn_readahead.go
//	sniffer        HTTP requests, stray PROXY headers   conn_sniff.go
//	readDeadlines  the deadline of the session's phase  conn_deadline.go
//	replyBuffer    sends the replies held so far        conn_replies.go
//	idleCloser     notes that the session waits         conn_idle.go
//	the socket
//
// A write from go-smtp goes through startTLSWatch (conn_starttls.go),
// which notes when TLS begins, into replyBuffer, which holds it until the
// session next reads or closes.
//
// The order is what makes the layers safe together: replies are sent
// before the session is marked as waiting, so a 421 from closeIfIdle
// never comes before, or in the middle of, a reply; a session past its
// DATA deadline fails before anything is sent or waited for. The
// behaviours of go-smtp the layers rely on (it reads every byte through
// one buffered reader over this conn, reads and writes on one goroutine,
// writes a reply before it reads or closes, never sets deadlines with its
// timeouts at zero, and puts its TLS layer over this conn) are listed in
// third_party/README.md and tested in third_party/go-smtp/connio_test.go.
type conn struct {
	net.Conn // the socket

	ahead   readAhead
	sniff   sniffer
	phase   readDeadlines
	replies replyBuffer
	idle    idleCloser
	tlsw    startTLSWatch
	limits  connLimits // the session's errors (limits.go)

	onClose   func()
	closeOnce sync.Once
}

func newConn(c net.Conn, cfg *Config) *conn {
	wc := &conn{Conn: c}
	wc.idle = idleCloser{conn: c, replies: &wc.replies, tlsw: &wc.tlsw}
	wc.replies = replyBuffer{r: &wc.idle, w: c, timeout: cfg.WriteTimeout}
	wc.phase = readDeadlines{r: &wc.replies, conn: c, cfg: cfg, now: time.Now}
	wc.sniff = sniffer{r: &wc.phase, refuse: wc.idle.refuse}
	wc.ahead = readAhead{r: &wc.sniff}
	wc.tlsw = startTLSWatch{w: &wc.replies}
	return wc
}

func (c *conn) Read(b []byte) (int, error) { return c.ahead.Read(b) }

func (c *conn) Write(b []byte) (int, error) { return c.tlsw.Write(b) }

// Close sends the last reply (221, 421), closes the connection and
// forgets the session.
func (c *conn) Close() error {
	c.replies.Flush()
	c.idle.markClosed()
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// flush sends the replies held so far, for a session about to wait for
// something other than the client.
func (c *conn) flush() error { return c.replies.Flush() }

// beginData switches to the DATA deadlines.
func (c *conn) beginData() {
	c.limits.inData.Store(true)
	c.phase.begin()
}

// pauseData stops the DATA clock until resume is called (see
// readDeadlines.pause).
func (c *conn) pauseData() (resume func()) { return c.phase.pause() }

// endData switches back to the command deadline.
func (c *conn) endData() {
	c.phase.end()
	c.limits.inData.Store(false)
}

// setTx says whether a transaction is open (between MAIL and the end of
// DATA): closeIfIdle leaves such a session alone.
func (c *conn) setTx(on bool) { c.idle.setTx(on) }

// setTLSConn records the TLS layer of a session that began in TLS, for
// closeIfIdle.
func (c *conn) setTLSConn(tc *tls.Conn) { c.idle.setTLSConn(tc) }

// closeIfIdle closes the connection with the reply text when the session
// is between transactions and waiting for the client; it reports whether
// the connection is closed.
func (c *conn) closeIfIdle(text string) bool { return c.idle.closeIfIdle(text) }
