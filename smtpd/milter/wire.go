package milter

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"time"
)

// maxPacket bounds a packet from a milter. The largest a milter sends in
// what mxd applies is a header field (bounded by the header section) or a
// reply text; a body replacement, which mxd ignores, comes in pieces of at
// most 1 MiB. go-milter itself would allocate whatever length a packet
// claims, up to 512 MiB: a milter answering nonsense must not cost that.
const maxPacket = 2 << 20

// wireConn is a connection to a milter as go-milter reads and writes it:
// packets of a 4-byte length, then that many bytes. It checks each length
// before the library allocates for it, carries the deadline of the
// current stage, and saves system calls: the library writes a packet in
// two writes and reads it in two reads, and a macro packet and the
// command it goes with are two packets, so a stage would cost four writes
// and two reads. wireConn keeps what is written until the library reads
// (the protocol answers only after a command, so nothing waits for bytes
// kept back) and reads through a buffer: a stage is one write and,
// usually, one read.
type wireConn struct {
	net.Conn
	br   *bufio.Reader
	wbuf []byte
	err  error // a write that failed: every later Read and Write returns it
	// deadline is the current stage's, set on the connection only when
	// it reads or writes (setting it is not free, and most stages of a
	// milter that asks for few replies do neither); applied is the one set.
	deadline, applied time.Time

	hdr  [4]byte
	have int   // bytes of hdr read
	left int64 // bytes of the current packet not read yet
}

// flushAt is how much wireConn keeps before it writes anyway: about a
// body chunk (at most 64 KiB), so that a milter that asks for no reply to
// the body (rspamd) still gets it as it arrives, and what a connection
// keeps stays bounded.
const flushAt = 64 << 10

func newWireConn(nc net.Conn) *wireConn {
	return &wireConn{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}
}

// stage sets the deadline for the exchange that follows.
func (c *wireConn) stage(d time.Duration) {
	c.deadline = time.Now().Add(d)
}

// armDeadline sets the stage's deadline on the connection, before it
// reads or writes.
func (c *wireConn) armDeadline() {
	if !c.deadline.Equal(c.applied) {
		c.Conn.SetDeadline(c.deadline)
		c.applied = c.deadline
	}
}

// Write keeps p until the next Read, or writes what is kept once it is
// over flushAt.
func (c *wireConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.wbuf = append(c.wbuf, p...)
	if len(c.wbuf) >= flushAt {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *wireConn) flush() error {
	if c.err != nil || len(c.wbuf) == 0 {
		return c.err
	}
	c.armDeadline()
	_, c.err = c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	if cap(c.wbuf) > flushAt {
		c.wbuf = nil // a body chunk's worth is not kept between messages
	}
	return c.err
}

// Close writes what is kept (the QUIT that ends the conversation), then
// closes.
func (c *wireConn) Close() error {
	c.flush()
	return c.Conn.Close()
}

// Read writes what is kept, then reads, watching the packet boundaries.
// go-milter reads the length with a read of exactly 4 bytes and then the
// packet with reads of at most its length, so no read spans two packets.
func (c *wireConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	if c.left > 0 && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	if c.left == 0 && len(p) > 4-c.have {
		p = p[:4-c.have]
	}
	if c.br.Buffered() == 0 {
		c.armDeadline()
	}
	n, err := c.br.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
		return n, err
	}
	copy(c.hdr[c.have:], p[:n])
	c.have += n
	if c.have == 4 {
		c.have = 0
		l := binary.BigEndian.Uint32(c.hdr[:])
		if l == 0 || l > maxPacket {
			c.Conn.Close()
			return n, fmt.Errorf("milter sent a packet of %d bytes (at most %d, at least 1)", l, maxPacket)
		}
		c.left = int64(l)
	}
	return n, err
}
