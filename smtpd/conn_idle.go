package smtpd

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// idleCloser knows when the session waits for its client between
// transactions, and can close it then with a last reply (drain,
// shutdown). It is the lowest layer: a read through it is the read from
// the socket.
//
// go-smtp writes only after a read returns, and a read takes mu after the
// socket read, so once closeIfIdle has decided, no reply of go-smtp's can
// come before or in the middle of its 421. The layers above send the
// replies held before they read through this one, so a session marked as
// reading has nothing held.
type idleCloser struct {
	conn    net.Conn       // the socket
	replies *replyBuffer   // where the TLS records of the last reply land
	tlsw    *startTLSWatch // whether plaintext may still be sent

	mu      sync.Mutex
	reading bool // blocked in the socket read: go-smtp is not writing
	inTx    bool // between MAIL and the end of DATA
	closed  bool
	tlsConn *tls.Conn // the session's TLS layer, once a session in TLS began
}

func (ic *idleCloser) Read(b []byte) (int, error) {
	ic.mu.Lock()
	if ic.closed {
		ic.mu.Unlock()
		return 0, errDataTimeoutNet
	}
	ic.reading = true
	ic.mu.Unlock()

	n, err := ic.conn.Read(b)

	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.reading = false
	if ic.closed {
		return 0, net.ErrClosed
	}
	return n, err
}

func (ic *idleCloser) setTx(on bool) {
	ic.mu.Lock()
	ic.inTx = on
	ic.mu.Unlock()
}

func (ic *idleCloser) setTLSConn(tc *tls.Conn) {
	ic.mu.Lock()
	ic.tlsConn = tc
	ic.mu.Unlock()
}

// markClosed makes every later read fail: the connection is being
// closed.
func (ic *idleCloser) markClosed() {
	ic.mu.Lock()
	ic.closed = true
	ic.mu.Unlock()
}

// refuse answers a client that is not speaking SMTP with msg, in
// plaintext, and closes the connection.
func (ic *idleCloser) refuse(msg string) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.closed = true
	ic.conn.SetWriteDeadline(time.Now().Add(time.Second))
	ic.conn.Write([]byte(msg))
	ic.conn.Close()
}

// closeIfIdle closes the connection with a last reply, text, when the
// session is between transactions and waiting for the client; it reports
// whether the connection is closed.
func (ic *idleCloser) closeIfIdle(text string) bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.closed {
		return true
	}
	if !ic.reading || ic.inTx {
		return false
	}
	ic.closed = true
	switch {
	case ic.tlsConn != nil:
		// The reply goes through TLS, then close_notify, so the client
		// sees a clean end. The session's goroutine is blocked in the
		// TLS layer's Read, and crypto/tls allows a Write alongside
		// it; the records land in the reply buffer, sent here.
		ic.tlsConn.Write([]byte(text))
		ic.tlsConn.CloseWrite()
		ic.replies.flushWithin(time.Second)
	case !ic.tlsw.begun():
		ic.conn.SetWriteDeadline(time.Now().Add(time.Second))
		ic.conn.Write([]byte(text))
	}
	// In the handshake, or in TLS before a session knows its TLS layer,
	// plaintext would be a broken record to the client: just close.
	ic.conn.Close()
	return true
}
