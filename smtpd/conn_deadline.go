package smtpd

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// readDeadlines gives each read the deadline of the session's phase, to
// enforce the timeouts go-smtp lacks, and lets the memory budget end a
// session that holds memory while sending little.
//
// go-smtp's ReadTimeout covers the whole of DATA, and after a timeout the
// rest of the body would be read as commands. Here each read gets its own
// deadline instead: the command timeout between commands, and during DATA
// a deadline that moves with the bytes received, capped by the DATA
// timeout. Once DATA has timed out, every later read fails before it
// reaches the layers below, so the session ends after its 4xx reply
// instead of reading message text as commands.
//
// The rate rule is a bucket of time: DATA starts with DataGrace, each
// byte adds 1/MinDataRate seconds, at most DataRateWindow can be saved
// up, and time drains it; the session times out when it is empty. A
// session must so keep up MinDataRate over any DataRateWindow: a burst
// followed by silence buys DataRateWindow at most, however big it was.
//
// DATA time is the time mxd was reading: while the session waits for
// memory or the queue (pause), the bucket does not drain, the DATA
// timeout does not run, and the session is not a candidate for eviction.
//
// begin, pause and end come from Session.Data, which go-smtp runs on a
// goroutine of its own for BDAT while its connection goroutine reads;
// pressure and evict come from other sessions' goroutines: hence the lock.
type readDeadlines struct {
	r    io.Reader                                     // the layer below
	conn interface{ SetReadDeadline(time.Time) error } // the socket
	cfg  *Config
	now  func() time.Time

	mu       sync.Mutex
	inData   bool
	dataFrom time.Time     // start of DATA, moved on by the pauses
	pauses   int           // pauses in progress
	pausedAt time.Time     // when the pauses in progress began
	credit   time.Duration // the rate bucket's time, at DATA time creditAt
	creditAt time.Duration
	recent   recentBytes
	dead     bool  // no more reads
	cause    error // the error of the first read that fails
	then     error // the error of the reads after it
}

func (d *readDeadlines) Read(b []byte) (int, error) {
	if err := d.next(); err != nil {
		return 0, err
	}
	n, err := d.r.Read(b)
	return d.done(n, err)
}

// next sets the deadline for the next read, or returns why no read may
// be made. The deadline is set under the lock, so an eviction that comes
// later always finds it and replaces it.
func (d *readDeadlines) next() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return d.fail()
	}
	if !d.inData {
		d.conn.SetReadDeadline(d.now().Add(d.cfg.CommandTimeout))
		return nil
	}
	at, _ := d.dataDeadline()
	d.conn.SetReadDeadline(d.now().Add(at - d.dataTime()))
	return nil
}

// dataDeadline is the DATA time at which the session times out if no
// more bytes come, and the error it then gets.
func (d *readDeadlines) dataDeadline() (time.Duration, error) {
	at, cause := d.creditAt+d.credit, errDataSlowNet
	if at >= d.cfg.DataTimeout {
		at, cause = d.cfg.DataTimeout, errDataTimeoutNet
	}
	return at, cause
}

// dataTime is the time spent in DATA reading, pauses left out.
func (d *readDeadlines) dataTime() time.Duration {
	if d.pauses > 0 {
		return d.pausedAt.Sub(d.dataFrom)
	}
	return d.now().Sub(d.dataFrom)
}

// done counts the bytes of a read in DATA, and turns its timeout into a
// failure for good.
func (d *readDeadlines) done(n int, err error) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inData && n > 0 {
		d.count(int64(n))
	}
	switch {
	case d.dead && n > 0: // evicted meanwhile: the next read fails
		return n, nil
	case d.dead:
		return 0, d.fail()
	case d.inData && err != nil && os.IsTimeout(err):
		_, cause := d.dataDeadline()
		d.dead, d.cause, d.then = true, cause, cause
		return n, d.fail()
	}
	return n, err
}

// count adds n bytes received now to the rate bucket and the recent
// bytes.
func (d *readDeadlines) count(n int64) {
	vt := d.dataTime()
	c := d.credit - (vt - d.creditAt) + time.Duration(float64(n)/float64(d.cfg.MinDataRate)*float64(time.Second))
	if c > d.cfg.DataRateWindow {
		c = max(d.cfg.DataRateWindow, d.credit-(vt-d.creditAt)) // the grace may be longer
	}
	d.credit, d.creditAt = c, vt
	d.recent.add(vt, n)
}

// fail returns the error of a read that may not be made.
func (d *readDeadlines) fail() error {
	err := d.cause
	d.cause = d.then
	return err
}

// begin switches to the DATA deadlines.
func (d *readDeadlines) begin() {
	d.mu.Lock()
	d.inData, d.dataFrom, d.pauses = true, d.now(), 0
	d.credit, d.creditAt, d.recent = d.cfg.DataGrace, 0, recentBytes{}
	d.mu.Unlock()
}

// pause stops DATA time until the returned func is called: time mxd
// spends not reading (waiting for memory, or for the queue to take a
// batch) does not count against the client's rate or the DATA timeout,
// and a session that waits is not evicted.
func (d *readDeadlines) pause() (resume func()) {
	d.mu.Lock()
	if d.pauses == 0 {
		d.pausedAt = d.now()
	}
	d.pauses++
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		if d.pauses--; d.pauses == 0 {
			d.dataFrom = d.dataFrom.Add(d.now().Sub(d.pausedAt))
		}
		d.mu.Unlock()
	}
}

// end switches back to the command deadline.
func (d *readDeadlines) end() {
	d.mu.Lock()
	d.inData = false
	d.mu.Unlock()
}

// pressureWindow is the recent past over which a session's rate is
// judged when memory is short, and evictMinAge the DATA time before
// which a session is not judged at all (its first bytes may still be on
// their way).
const (
	pressureWindow = 5 * time.Second
	evictMinAge    = time.Second
)

// pressure says whether the session, holding held bytes of the budget,
// may be evicted to serve sessions waiting for memory, and how much it
// deserves it. It may when it is reading its client's data (not paused,
// past evictMinAge) and received less than held in the last
// pressureWindow of DATA time (at its rate since DATA began, when that
// is shorter): it holds more than a window's worth of its own traffic.
// The score is held over that window's worth: sessions that would take
// longest to send what they hold go first.
func (d *readDeadlines) pressure(held int64) (score float64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.inData || d.dead || d.pauses > 0 {
		return 0, false
	}
	vt := d.dataTime()
	if vt < evictMinAge {
		return 0, false
	}
	perWindow := float64(d.recent.since(vt)) * float64(pressureWindow) / float64(min(vt, pressureWindow))
	if perWindow >= float64(held) {
		return 0, false
	}
	return float64(held) / max(perWindow, 1), true
}

// evict ends the session's DATA for the memory budget: a read blocked
// now returns at once, and this read or the next fails with
// replyMemoryPressure (the session's reply, also through BDAT's chunk
// reader), and every later one as from a closed connection, so that
// go-smtp closes the session after that reply. It reports false if the
// session is no longer reading DATA.
func (d *readDeadlines) evict() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.inData || d.dead || d.pauses > 0 {
		return false
	}
	d.dead, d.cause, d.then = true, replyMemoryPressure, net.ErrClosed
	d.conn.SetReadDeadline(time.Unix(1, 0))
	return true
}

// recentBytes counts the bytes received in slots of DATA time, for the
// bytes of the last pressureWindow.
type recentBytes [recentSlots]struct{ i, n int64 }

const (
	recentSlots = 8
	recentSlot  = pressureWindow / 4 // 8 slots keep two windows
)

func (r *recentBytes) add(vt time.Duration, n int64) {
	i := int64(vt / recentSlot)
	s := &r[i%recentSlots]
	if s.i != i {
		s.i, s.n = i, 0
	}
	s.n += n
}

// since is the bytes of the slots that overlap the last pressureWindow
// before vt.
func (r *recentBytes) since(vt time.Duration) int64 {
	lo, hi := int64(max(vt-pressureWindow, 0)/recentSlot), int64(vt/recentSlot)
	var n int64
	for _, s := range r {
		if s.i >= lo && s.i <= hi {
			n += s.n
		}
	}
	return n
}

// netTimeout is a net.Error that says timeout, so go-smtp treats it as one.
type netTimeout struct{ error }

func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return false }

// Unwrap lets the session see the cause (errDataTimeout) through
// go-smtp's reader, for its reply.
func (e netTimeout) Unwrap() error { return e.error }

var (
	errDataTimeoutNet net.Error = netTimeout{errDataTimeout}
	errDataSlowNet    net.Error = netTimeout{errDataSlow}
)
