package smtpd

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// readDeadlines gives each read the deadline of the session's phase, to
// enforce the timeouts go-smtp lacks.
//
// go-smtp's ReadTimeout covers the whole of DATA, and after a timeout the
// rest of the body would be read as commands. Here each read gets its own
// deadline instead: the command timeout between commands, and during DATA
// a deadline that moves with the bytes received (a minimum average rate
// after a grace period), capped by the DATA timeout. Once DATA has timed
// out, every later read fails before it reaches the layers below, so the
// session ends after its 4xx reply instead of reading message text as
// commands.
//
// begin, pause and end come from Session.Data, which go-smtp runs on a
// goroutine of its own for BDAT while its connection goroutine reads:
// hence the lock.
type readDeadlines struct {
	r    io.Reader                                     // the layer below
	conn interface{ SetReadDeadline(time.Time) error } // the socket
	cfg  *Config
	now  func() time.Time

	mu       sync.Mutex
	inData   bool
	dataFrom time.Time
	dataN    int64
	dead     bool // DATA timed out: no more reads
}

func (d *readDeadlines) Read(b []byte) (int, error) {
	deadline, err := d.next()
	if err != nil {
		return 0, err
	}
	d.conn.SetReadDeadline(deadline)
	n, err := d.r.Read(b)
	return d.done(n, err)
}

// next is the deadline for the next read, or errDataTimeoutNet once DATA
// has timed out.
func (d *readDeadlines) next() (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return time.Time{}, errDataTimeoutNet
	}
	if !d.inData {
		return d.now().Add(d.cfg.CommandTimeout), nil
	}
	// Grace, then at least MinDataRate bytes per second on average.
	deadline := d.dataFrom.Add(d.cfg.DataGrace + time.Duration(float64(d.dataN)/float64(d.cfg.MinDataRate)*float64(time.Second)))
	if limit := d.dataFrom.Add(d.cfg.DataTimeout); deadline.After(limit) {
		deadline = limit
	}
	return deadline, nil
}

// done counts the bytes of a read in DATA, and turns its timeout into
// errDataTimeoutNet for good.
func (d *readDeadlines) done(n int, err error) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.inData {
		return n, err
	}
	d.dataN += int64(n)
	if err != nil && os.IsTimeout(err) {
		d.dead = true
		return n, errDataTimeoutNet
	}
	return n, err
}

// begin switches to the DATA deadlines.
func (d *readDeadlines) begin() {
	d.mu.Lock()
	d.inData, d.dataFrom, d.dataN = true, d.now(), 0
	d.mu.Unlock()
}

// pause moves the DATA deadlines on by p: time mxd spent not reading
// (waiting for memory, or for the queue to take a batch) does not count
// against the client's rate or the DATA timeout.
func (d *readDeadlines) pause(p time.Duration) {
	d.mu.Lock()
	d.dataFrom = d.dataFrom.Add(p)
	d.mu.Unlock()
}

// end switches back to the command deadline.
func (d *readDeadlines) end() {
	d.mu.Lock()
	d.inData = false
	d.mu.Unlock()
}

// netTimeout is a net.Error that says timeout, so go-smtp treats it as one.
type netTimeout struct{ error }

func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return false }

// Unwrap lets the session see the cause (errDataTimeout) through
// go-smtp's reader, for its reply.
func (e netTimeout) Unwrap() error { return e.error }

var errDataTimeoutNet net.Error = netTimeout{errDataTimeout}
