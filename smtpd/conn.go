package smtpd

import (
	"bytes"
	"crypto/tls"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn wraps a client connection to enforce the timeouts go-smtp lacks.
//
// go-smtp's ReadTimeout covers the whole of DATA, and after a timeout the
// rest of the body would be read as commands. Here each Read gets its own
// deadline instead: the command timeout between commands, and during DATA
// a deadline that moves with the bytes received (a minimum average rate
// after a grace period), capped by the DATA timeout. Once DATA has timed
// out, every later Read fails, so the session ends after its 4xx reply
// instead of reading message text as commands.
type conn struct {
	net.Conn
	cfg *Config

	mu       sync.Mutex
	inData   bool
	dataFrom time.Time
	dataN    int64
	dead     bool // DATA timed out: no more reads
	reading  bool // blocked in Read: go-smtp is not writing
	closed   bool
	sniffed  bool    // the first bytes were looked at
	first    [8]byte // the first bytes, until sniffed
	firstN   int
	inTx     bool      // between MAIL and the end of DATA
	tlsConn  *tls.Conn // the session's TLS layer, once a session in TLS began

	wmu       sync.Mutex // guards wbuf: Close may come from another goroutine
	wbuf      []byte     // replies not yet sent
	greeted   bool       // the greeting was written
	tlsBegun  atomic.Bool
	onClose   func()
	closeOnce sync.Once

	// Read-ahead: go-smtp reads through a 4 KiB buffer, which would take
	// a 10 KiB message in three system calls. Once a read has filled the
	// caller's buffer (more is probably waiting), the next read goes into
	// a larger buffer, borrowed from readAheads only until it is drained.
	// A session waiting for its client reads into go-smtp's own buffer
	// and holds none. Only the session's goroutine touches these.
	ra       *[]byte
	raR, raW int
	raErr    error // the error that came with the bytes in ra
	full     bool  // the last network read filled the caller's buffer
}

const readAheadSize = 16 << 10

var readAheads = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func newConn(c net.Conn, cfg *Config) *conn {
	return &conn{Conn: c, cfg: cfg}
}

func (c *conn) Read(b []byte) (int, error) {
	if c.ra == nil && c.full && len(b) < readAheadSize {
		ra := readAheads.Get().(*[]byte)
		n, err := c.netRead(*ra)
		c.full = n == len(*ra)
		if n == 0 {
			readAheads.Put(ra)
			return 0, err
		}
		c.ra, c.raR, c.raW, c.raErr = ra, 0, n, err
	}
	if c.ra != nil {
		n := copy(b, (*c.ra)[c.raR:c.raW])
		c.raR += n
		var err error
		if c.raR == c.raW {
			err = c.raErr
			readAheads.Put(c.ra)
			c.ra, c.raErr = nil, nil
		}
		return n, err
	}
	n, err := c.netRead(b)
	c.full = n == len(b)
	return n, err
}

// netRead reads from the network with the deadline of the session's
// phase, after sending the replies waiting in the write buffer.
func (c *conn) netRead(b []byte) (int, error) {
	c.mu.Lock()
	if c.dead || c.closed {
		c.mu.Unlock()
		return 0, errDataTimeoutNet
	}
	now := time.Now()
	deadline := now.Add(c.cfg.CommandTimeout)
	if c.inData {
		// Grace, then at least MinDataRate bytes per second on average.
		d := c.dataFrom.Add(c.cfg.DataGrace + time.Duration(float64(c.dataN)/float64(c.cfg.MinDataRate)*float64(time.Second)))
		if limit := c.dataFrom.Add(c.cfg.DataTimeout); d.After(limit) {
			d = limit
		}
		deadline = d
	}
	c.mu.Unlock()
	if err := c.flush(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()

	c.Conn.SetReadDeadline(deadline)
	n, err := c.Conn.Read(b)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading = false
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.inData {
		c.dataN += int64(n)
	}
	if !c.sniffed && n > 0 {
		c.firstN += copy(c.first[c.firstN:], b[:n])
		msg, more := sniff(c.first[:c.firstN])
		c.sniffed = !more || c.firstN == len(c.first)
		if msg != "" {
			// Not SMTP: answer once and close rather than reply to
			// each line of an HTTP request or a PROXY header.
			c.closed = true
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			c.Conn.Write([]byte(msg))
			c.Conn.Close()
			return 0, net.ErrClosed
		}
	}
	if err != nil && os.IsTimeout(err) && c.inData {
		c.dead = true
		return n, errDataTimeoutNet
	}
	return n, err
}

// Write collects go-smtp's replies; they are sent when the session next
// waits for the client (Read) or ends (Close). A pipelined MAIL, RCPT,
// DATA group then costs one write(2) for its three replies instead of
// three (RFC 2920 §3.1 lets a server answer a group at once). go-smtp
// always reads, or closes, after it replies, so nothing waits in the
// buffer while the client waits for it.
//
// Write also notes when TLS begins. Besides the greeting, the only 220
// reply is the one to STARTTLS, after which the next bytes either way are
// the TLS handshake (RFC 3207 §4); later replies are TLS records.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if bytes.HasPrefix(b, []byte("220 ")) {
		if c.greeted {
			c.tlsBegun.Store(true)
		}
		c.greeted = true
	}
	c.wbuf = append(c.wbuf, b...)
	if len(c.wbuf) >= 16<<10 {
		if err := c.flushLocked(c.cfg.WriteTimeout); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// flush sends the collected replies.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked(c.cfg.WriteTimeout)
}

func (c *conn) flushLocked(timeout time.Duration) error {
	if len(c.wbuf) == 0 {
		return nil
	}
	c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// Close closes the connection and forgets the session.
func (c *conn) Close() error {
	c.flush() // a last reply (221, 421) before the close
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// beginData switches to the DATA deadlines.
func (c *conn) beginData() {
	c.mu.Lock()
	c.inData, c.dataFrom, c.dataN = true, time.Now(), 0
	c.mu.Unlock()
}

// pauseData moves the DATA deadlines on by d: time mxd spent not reading
// (waiting for memory, or for the queue to take a batch) does not count
// against the client's rate or the DATA timeout.
func (c *conn) pauseData(d time.Duration) {
	c.mu.Lock()
	c.dataFrom = c.dataFrom.Add(d)
	c.mu.Unlock()
}

func (c *conn) endData() {
	c.mu.Lock()
	c.inData = false
	c.mu.Unlock()
}

func (c *conn) setTx(on bool) {
	c.mu.Lock()
	c.inTx = on
	c.mu.Unlock()
}

// setTLSConn records the TLS layer of a session that began in TLS, for
// closeIfIdle.
func (c *conn) setTLSConn(tc *tls.Conn) {
	c.mu.Lock()
	c.tlsConn = tc
	c.mu.Unlock()
}

// closeIfIdle closes the connection with a 421 reply when the session is
// between transactions and waiting for the client; it reports whether it
// did. go-smtp writes only after a Read returns, and Read takes c.mu after
// the socket read, so the 421 cannot interleave with one of its replies.
func (c *conn) closeIfIdle(text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	if !c.reading || c.inTx {
		return false
	}
	c.closed = true
	switch {
	case c.tlsConn != nil:
		// The reply goes through TLS, then close_notify, so the client
		// sees a clean end. The session's goroutine is blocked in the
		// TLS layer's Read, and crypto/tls allows a Write alongside
		// it; the records land in wbuf, sent here.
		c.tlsConn.Write([]byte(text))
		c.tlsConn.CloseWrite()
		c.wmu.Lock()
		c.flushLocked(time.Second)
		c.wmu.Unlock()
	case !c.tlsBegun.Load():
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write([]byte(text))
	}
	// In the handshake, or in TLS before a session knows its TLS layer,
	// plaintext would be a broken record to the client: just close.
	c.Conn.Close()
	return true
}

// netTimeout is a net.Error that says timeout, so go-smtp treats it as one.
type netTimeout struct{ error }

func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return false }

var errDataTimeoutNet net.Error = netTimeout{errDataTimeout}
