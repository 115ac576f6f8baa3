package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadConfig is what one load run needs.
type loadConfig struct {
	server   string
	helo     string
	from     string
	rcpts    []string
	n        int           // messages to send
	sessions int           // concurrent sessions
	size     int           // bytes per message
	perConn  int           // messages per session before reconnecting; 0: no limit
	duration time.Duration // stop starting messages after this long
	rate     float64       // messages started per second in all; 0: as fast as the server answers
	timeout  time.Duration // per reply, and per stall of a write
	dataWait time.Duration // for the reply to the end of the data
	progress time.Duration // progress line interval; 0: none
	sels     []procSel     // processes whose CPU time to measure
	dial     *dialer       // opens the sessions: source addresses, STARTTLS
}

// A loadResult is what a load run measured. Durations are nanoseconds in
// JSON.
type loadResult struct {
	Server    string        `json:"server"`
	Sessions  int           `json:"sessions"`
	Size      int           `json:"size"`
	Requested int           `json:"requested"`
	Attempted int           `json:"attempted"`
	Accepted  int           `json:"accepted"` // 250 at end of data
	Elapsed   time.Duration `json:"elapsed_ns"`
	Rate      float64       `json:"msgs_per_sec"` // accepted per second
	MiBps     float64       `json:"mib_per_sec"`
	Latency   summary       `json:"latency"` // end of data to reply, 250s only
	Codes     counts        `json:"codes"`
	Connects  int           `json:"connects"`
	CPU       []cpuUse      `json:"cpu,omitempty"`
	// SelfCPU is the load tool's own CPU time: it shares the machine with
	// the server it measures.
	SelfCPU   float64 `json:"self_cpu_seconds"`
	TimedOut  bool    `json:"stopped_by_duration"`
	Pipelined bool    `json:"pipelined"`
	// Connection is, with -per-conn, the time from the start of the
	// connect to the 221 reply to QUIT, for connections that got one.
	Connection *summary `json:"connection_latency,omitempty"`
	// TLS counts the STARTTLS handshakes, with -starttls.
	TLS *tlsCounts `json:"tls,omitempty"`
	// Hold is what became of the -hold sessions.
	Hold *holdResult `json:"hold,omitempty"`
}

// tlsCounts counts a run's TLS handshakes.
type tlsCounts struct {
	Handshakes int    `json:"handshakes"`
	Full       int    `json:"full"`
	Resumed    int    `json:"resumed"`  // tls.ConnectionState.DidResume
	Versions   counts `json:"versions"` // "TLS 1.3": handshakes
}

func (t *tlsCounts) add(o tlsCounts) {
	t.Handshakes += o.Handshakes
	t.Full += o.Full
	t.Resumed += o.Resumed
	t.Versions.add(o.Versions)
}

// note counts one handshake.
func (t *tlsCounts) note(st *tls.ConnectionState) {
	t.Handshakes++
	if st.DidResume {
		t.Resumed++
	} else {
		t.Full++
	}
	t.Versions[tls.VersionName(st.Version)]++
}

// worker state, merged at the end.
type workerResult struct {
	lat       []time.Duration
	connLat   []time.Duration // connect to 221, with -per-conn
	codes     counts
	connects  int
	pipelined bool
	tls       tlsCounts
}

// loadRun is the state shared by the sessions of one run.
type loadRun struct {
	cfg   loadConfig
	gen   *generator
	start time.Time

	next     atomic.Int64 // next message sequence number to claim
	done     atomic.Int64 // transactions finished, any outcome
	accepted atomic.Int64
	temp     atomic.Int64 // 4xx
	perm     atomic.Int64 // 5xx
	errs     atomic.Int64 // connection and protocol errors
}

// runLoad sends cfg.n messages over cfg.sessions sessions.
func runLoad(ctx context.Context, cfg loadConfig, stderr io.Writer) (loadResult, error) {
	gen, err := newGenerator(cfg.from, cfg.rcpts, cfg.size)
	if err != nil {
		return loadResult{}, err
	}
	var before map[int]procStat
	if len(cfg.sels) > 0 {
		if before, err = snapshot(); err != nil {
			return loadResult{}, err
		}
		for _, s := range cfg.sels {
			if len(s.members(before)) == 0 {
				return loadResult{}, fmt.Errorf("-pid %s: no such process", s)
			}
		}
	}

	lr := &loadRun{cfg: cfg, gen: gen}
	self0 := selfCPU()
	lr.start = time.Now()
	runCtx, cancel := context.WithDeadline(ctx, lr.start.Add(cfg.duration))
	defer cancel()

	stopProgress := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.progress > 0 {
		progressWG.Go(func() { lr.progress(stderr, stopProgress) })
	}
	results := make([]workerResult, cfg.sessions)
	var wg sync.WaitGroup
	for w := range cfg.sessions {
		wg.Go(func() { results[w] = lr.session(runCtx) })
	}
	wg.Wait()
	elapsed := time.Since(lr.start)
	close(stopProgress)
	progressWG.Wait()

	r := lr.result(results, elapsed)
	r.TimedOut = lr.next.Load() < int64(cfg.n) && ctx.Err() == nil
	r.SelfCPU = selfCPU() - self0
	if len(cfg.sels) > 0 {
		after, err := snapshot()
		if err != nil {
			return r, err
		}
		r.CPU = cpuBetween(cfg.sels, before, after, r.Accepted)
	}
	return r, ctx.Err()
}

// progress prints a line every cfg.progress until stop is closed.
func (lr *loadRun) progress(w io.Writer, stop <-chan struct{}) {
	t := time.NewTicker(lr.cfg.progress)
	defer t.Stop()
	var last int64
	lastT := lr.start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			a := lr.accepted.Load()
			fmt.Fprintf(w, "smtpload: %5.1fs %d/%d done, %d accepted, %.0f msg/s now, 4xx %d, 5xx %d, errors %d\n",
				now.Sub(lr.start).Seconds(), lr.done.Load(), lr.cfg.n, a,
				float64(a-last)/now.Sub(lastT).Seconds(), lr.temp.Load(), lr.perm.Load(), lr.errs.Load())
			last, lastT = a, now
		}
	}
}

// session is one SMTP session's loop: it claims message numbers until all
// are claimed or ctx ends, and reconnects after errors, 421s and -per-conn
// messages.
func (lr *loadRun) session(ctx context.Context) workerResult {
	cfg := lr.cfg
	res := workerResult{codes: counts{}, tls: tlsCounts{Versions: counts{}}, lat: make([]time.Duration, 0, cfg.n/cfg.sessions+1)}
	hdr := make([]byte, 0, 1024)
	var c *client
	sent := 0
	defer func() {
		if c != nil {
			lr.hangUp(&res, c)
		}
	}()
	for ctx.Err() == nil {
		seq := lr.next.Add(1) - 1
		if seq >= int64(cfg.n) {
			break
		}
		lr.pace(ctx, seq)
		if c == nil {
			var err error
			c, err = cfg.dial.dial(ctx)
			res.connects++
			if err != nil {
				res.codes[errClass(err)]++
				lr.errs.Add(1)
				lr.done.Add(1)
				c = nil
				// Do not spin against a server that refuses.
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			_, res.pipelined = c.ext["PIPELINING"]
			if c.tls != nil {
				res.tls.note(c.tls)
			}
			c.dataTimeout = cfg.dataWait
			sent = 0
		}
		msg := lr.gen.wire(hdr[:0], uint64(seq), time.Now())
		hdr = msg[0]
		tx, err := c.send(cfg.from, cfg.rcpts, msg, cfg.size)
		lr.done.Add(1)
		if err != nil {
			res.codes[errClass(err)]++
			lr.errs.Add(1)
			c.conn.Close()
			c = nil
			continue
		}
		lr.record(&res, tx)
		sent++
		if tx.closed {
			c.conn.Close()
			c = nil
		} else if cfg.perConn > 0 && sent >= cfg.perConn {
			lr.hangUp(&res, c)
			c = nil
		}
	}
	return res
}

// pace waits, with -rate, until message seq is due: the run starts
// messages at a steady rate whatever the server's replies, so that two
// servers can be compared doing the same work per second. A session that
// falls behind starts its next message at once.
func (lr *loadRun) pace(ctx context.Context, seq int64) {
	if lr.cfg.rate <= 0 {
		return
	}
	due := lr.start.Add(time.Duration(float64(seq) / lr.cfg.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		sleepCtx(ctx, d)
	}
}

// hangUp ends c with QUIT; with -per-conn, a 221 reply ends the
// connection's time.
func (lr *loadRun) hangUp(res *workerResult, c *client) {
	if c.quit() && lr.cfg.perConn > 0 {
		res.connLat = append(res.connLat, time.Since(c.start))
	}
}

// record counts one finished transaction.
func (lr *loadRun) record(res *workerResult, tx txResult) {
	res.codes[fmt.Sprintf("%s %d", tx.stage, tx.code)]++
	switch {
	case tx.stage == "data-end" && tx.code == 250:
		lr.accepted.Add(1)
		res.lat = append(res.lat, tx.latency)
	case tx.code/100 == 4:
		lr.temp.Add(1)
	default:
		lr.perm.Add(1)
	}
}

// result merges the sessions' results.
func (lr *loadRun) result(results []workerResult, elapsed time.Duration) loadResult {
	r := loadResult{
		Server:    lr.cfg.server,
		Sessions:  lr.cfg.sessions,
		Size:      lr.cfg.size,
		Requested: lr.cfg.n,
		Attempted: int(lr.done.Load()),
		Accepted:  int(lr.accepted.Load()),
		Elapsed:   elapsed,
		Codes:     counts{},
	}
	var lat, connLat []time.Duration
	hs := tlsCounts{Versions: counts{}}
	for _, w := range results {
		lat = append(lat, w.lat...)
		connLat = append(connLat, w.connLat...)
		hs.add(w.tls)
		r.Codes.add(w.codes)
		r.Connects += w.connects
		r.Pipelined = r.Pipelined || w.pipelined
	}
	r.Latency = summarize(lat)
	if lr.cfg.perConn > 0 {
		cl := summarize(connLat)
		r.Connection = &cl
	}
	if lr.cfg.dial.tls != nil {
		r.TLS = &hs
	}
	r.Rate = float64(r.Accepted) / elapsed.Seconds()
	r.MiBps = r.Rate * float64(lr.cfg.size) / (1 << 20)
	return r
}

// selfCPU is the user and system CPU time of this process, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
