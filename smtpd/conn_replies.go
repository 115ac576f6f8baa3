package smtpd

import (
	"io"
	"sync"
	"time"
)

// replyBuffer holds go-smtp's replies until the session next waits for
// the client (a read through it) or ends (Close). A pipelined MAIL, RCPT,
// DATA group then costs one write(2) for its three replies instead of
// three (RFC 2920 §3.1 lets a server answer a group at once). go-smtp
// writes a reply before it reads or closes, so nothing waits here while
// the client waits for it; a session that waits for something else first
// (memory, in DATA) calls Flush.
//
// Close may come from another goroutine than the session's: hence the
// lock.
type replyBuffer struct {
	r io.Reader // the layer below on the read side
	w interface {
		io.Writer
		SetWriteDeadline(time.Time) error
	} // the socket
	timeout time.Duration // for each write to the socket

	mu  sync.Mutex
	buf []byte
}

// replyBufferMax is the most held before a Write sends it all: a reply
// is a few lines, so only a long group of pipelined commands reaches it.
const replyBufferMax = 16 << 10

// Write holds b, or sends everything held once that reaches
// replyBufferMax.
func (rb *replyBuffer) Write(b []byte) (int, error) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	rb.buf = append(rb.buf, b...)
	if len(rb.buf) >= replyBufferMax {
		if err := rb.flushLocked(rb.timeout); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// Read sends the replies held, then reads from the layer below.
func (rb *replyBuffer) Read(b []byte) (int, error) {
	if err := rb.Flush(); err != nil {
		return 0, err
	}
	return rb.r.Read(b)
}

// Flush sends the replies held.
func (rb *replyBuffer) Flush() error { return rb.flushWithin(rb.timeout) }

// flushWithin sends the replies held, giving the write timeout.
func (rb *replyBuffer) flushWithin(timeout time.Duration) error {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.flushLocked(timeout)
}

func (rb *replyBuffer) flushLocked(timeout time.Duration) error {
	if len(rb.buf) == 0 {
		return nil
	}
	rb.w.SetWriteDeadline(time.Now().Add(timeout))
	_, err := rb.w.Write(rb.buf)
	rb.buf = rb.buf[:0]
	return err
}
