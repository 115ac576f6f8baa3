package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// holdConfig is -hold: sessions that take memory at the server and then
// send little, as an attacker's would, kept open while the load runs so
// that the load's latency shows what they cost other senders.
type holdConfig struct {
	n       int           // sessions
	kind    string        // holdHeader or holdTrickle
	bytes   int           // holdHeader: header bytes sent at once, never ended
	rate    int           // holdTrickle: body bytes per second per session
	lead    time.Duration // from the last session opened to the start of the load
	dialers int           // sessions opened at once
	reopen  bool          // open a session again when the server ends one
	from    string
	rcpt    string
	dial    *dialer // the -hold-source addresses
}

const (
	// holdHeader sessions say DATA, send a header section of -hold-bytes
	// without the empty line that ends it, and then nothing.
	holdHeader = "header"
	// holdTrickle sessions say DATA, send a short header, then the body
	// at -hold-rate bytes per second, never ending it.
	holdTrickle = "trickle"
)

// A holdResult is what became of the -hold sessions.
type holdResult struct {
	Kind      string `json:"kind"`
	Requested int    `json:"requested"`
	Opened    int    `json:"opened"` // took DATA and sent their first bytes, reopened ones included
	// Codes counts the failures to open, and the replies the open
	// sessions got before the end of the load ("data 451 4.3.2", "data
	// 451 4.4.2", "closed": closed without a reply).
	Codes counts `json:"codes"`
	// StillOpen is the sessions never answered or closed by the end of
	// the load.
	StillOpen int `json:"still_open"`
}

// holder is one open -hold session.
type holder struct {
	c     *client
	ended atomic.Bool // answered or closed by the server
}

// holdRun is the -hold sessions of a run: one slot per session, each
// opening a session again when the server ends it, with -hold-reopen.
type holdRun struct {
	cfg     holdConfig
	opening chan struct{} // a token per session being opened
	stop    chan struct{}
	slots   sync.WaitGroup
	writers sync.WaitGroup // the trickle of each session

	mu      sync.Mutex
	res     holdResult
	holders map[*holder]bool // open now
	stopped bool
}

// startHold opens the -hold sessions, cfg.dialers at a time, and keeps
// them doing what cfg.kind says until stopHold.
func startHold(ctx context.Context, cfg holdConfig, stderr io.Writer) (*holdRun, error) {
	if _, err := raiseNoFile(uint64(cfg.n) + 1024); err != nil {
		return nil, fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	h := &holdRun{cfg: cfg, res: holdResult{Kind: cfg.kind, Requested: cfg.n, Codes: counts{}},
		opening: make(chan struct{}, max(cfg.dialers, 1)), stop: make(chan struct{}), holders: map[*holder]bool{}}
	var first sync.WaitGroup
	for range cfg.n {
		first.Add(1)
		h.slots.Go(func() { h.slot(ctx, first.Done) })
	}
	first.Wait()
	h.mu.Lock()
	fmt.Fprintf(stderr, "smtpload: hold %d/%d %s sessions open, waiting %s\n", len(h.holders), cfg.n, cfg.kind, cfg.lead)
	h.mu.Unlock()
	return h, sleepCtx(ctx, cfg.lead)
}

// slot keeps one session open until stopHold: it opens it, waits for the
// server to end it, and with -hold-reopen opens another. opened is called
// after the first try.
func (h *holdRun) slot(ctx context.Context, opened func()) {
	for {
		select {
		case h.opening <- struct{}{}:
		case <-h.stop:
			opened()
			return
		}
		hd, err := h.open(ctx)
		<-h.opening
		h.mu.Lock()
		if err != nil {
			h.res.Codes[errClass(err)]++
		} else {
			h.res.Opened++
			h.holders[hd] = true
		}
		stopped := h.stopped
		h.mu.Unlock()
		opened()
		opened = func() {}
		if err != nil {
			if sleepCtx(ctx, 100*time.Millisecond) != nil || stopped || !h.cfg.reopen {
				return // do not spin against a server that refuses
			}
			continue
		}
		if h.cfg.kind == holdTrickle {
			h.writers.Go(func() { h.trickle(hd) })
		}
		what := "closed"
		if r, err := hd.c.readReplyWithin(24 * time.Hour); err == nil {
			code, _, _ := strings.Cut(r.text, " ")
			what = fmt.Sprintf("data %d %s", r.code, code)
		}
		hd.ended.Store(true)
		hd.c.conn.Close()
		h.mu.Lock()
		delete(h.holders, hd)
		stopped = h.stopped
		if !stopped {
			h.res.Codes[what]++
		}
		h.mu.Unlock()
		if stopped || !h.cfg.reopen || ctx.Err() != nil {
			return
		}
	}
}

// open takes one session to DATA and sends its first bytes.
func (h *holdRun) open(ctx context.Context) (*holder, error) {
	c, err := h.cfg.dial.dial(ctx)
	if err != nil {
		return nil, err
	}
	for _, step := range []struct{ stage, line string }{
		{"mail", "MAIL FROM:<" + h.cfg.from + ">"}, {"rcpt", "RCPT TO:<" + h.cfg.rcpt + ">"}, {"data", "DATA"},
	} {
		r, err := c.cmd(step.line)
		if err == nil && r.code/100 != 2 && r.code != 354 {
			err = &replyError{stage: step.stage, r: r}
		}
		if err != nil {
			c.conn.Close()
			return nil, err
		}
	}
	first := "From: <" + h.cfg.from + ">\r\nSubject: hold\r\n\r\n"
	if h.cfg.kind == holdHeader {
		first = headerLines(h.cfg.bytes)
	}
	c.w.WriteString(first)
	if err := c.flush(); err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	return &holder{c: c}, nil
}

// headerLines is n bytes of header fields, CRLF line endings, without
// the empty line that would end the section.
func headerLines(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "X-Hold-%05d: %s\r\n", i, strings.Repeat("h", 56))
	}
	return b.String()
}

// bodyLines is n bytes (at least 3) of body lines of at most 80 bytes,
// CRLF included: SMTP servers refuse longer lines (RFC 5321 §4.5.3.1.6
// allows 1000).
func bodyLines(n int) string {
	var b strings.Builder
	for n = max(n, 3); n > 0; {
		k := min(n, 80)
		if n-k > 0 && n-k < 3 {
			k -= 3 // leave the last line room for a byte and its CRLF
		}
		b.WriteString(strings.Repeat("b", k-2) + "\r\n")
		n -= k
	}
	return b.String()
}

// trickle sends hd a second's worth of body every second until the
// server ends it or the run stops. Each session has its own goroutine, so
// that one the server does not read (its socket buffers full) does not
// slow the others down.
func (h *holdRun) trickle(hd *holder) {
	line := []byte(bodyLines(h.cfg.rate))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for !hd.ended.Load() {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		hd.c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		hd.c.conn.Write(line) // a closed or full connection is the server's doing
	}
}

// stopHold closes the -hold sessions and says what became of them.
func (h *holdRun) stopHold() holdResult {
	close(h.stop)
	h.mu.Lock()
	h.stopped = true
	h.res.StillOpen = len(h.holders)
	for hd := range h.holders {
		hd.c.conn.Close()
	}
	h.mu.Unlock()
	h.slots.Wait()
	h.writers.Wait()
	return h.res
}
