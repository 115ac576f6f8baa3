package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idleConfig is what an idle-connection run needs.
type idleConfig struct {
	server  string
	helo    string
	conns   int           // connections to open and hold
	dialers int           // connections opened at once
	settle  time.Duration // wait after the last connection, before measuring
	hold    time.Duration // keep holding after the measurement
	timeout time.Duration
	sel     procSel // the server, whose RSS is measured
	dial    *dialer // opens the sessions: source addresses, STARTTLS
}

// An idleResult is what an idle run measured.
type idleResult struct {
	Server      string  `json:"server"`
	Requested   int     `json:"requested"`
	Opened      int     `json:"opened"` // past greeting and EHLO
	Codes       counts  `json:"codes"`  // why the others failed
	RSSBefore   int64   `json:"rss_before_kib"`
	RSSAfter    int64   `json:"rss_after_kib"`
	PerConnKiB  float64 `json:"rss_per_conn_kib"`
	NoFileLimit uint64  `json:"nofile_limit"`
}

// raiseNoFile raises RLIMIT_NOFILE to fit want descriptors, up to the hard
// limit, and the hard limit too when the process may (root).
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if lim.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// runIdle opens cfg.conns sessions, takes each past the greeting and EHLO,
// and measures how much the server's RSS grew per session.
func runIdle(ctx context.Context, cfg idleConfig, stderr io.Writer) (idleResult, error) {
	r := idleResult{Server: cfg.server, Requested: cfg.conns, Codes: counts{}}
	lim, err := raiseNoFile(uint64(cfg.conns) + 256)
	if err != nil {
		return r, fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	r.NoFileLimit = lim
	procs, err := snapshot()
	if err != nil {
		return r, err
	}
	if r.RSSBefore, err = cfg.sel.rssKiB(procs); err != nil {
		return r, err
	}

	clients := openIdle(ctx, cfg, r.Codes, stderr)
	defer func() {
		// Close in parallel: QUIT one by one would take a round trip each.
		var qw sync.WaitGroup
		for _, c := range clients {
			qw.Go(func() { c.quit() })
		}
		qw.Wait()
	}()
	r.Opened = len(clients)
	fmt.Fprintf(stderr, "smtpload: idle %d/%d open, settling %s\n", r.Opened, cfg.conns, cfg.settle)
	if err := sleepCtx(ctx, cfg.settle); err != nil {
		return r, err
	}
	if procs, err = snapshot(); err != nil {
		return r, err
	}
	if r.RSSAfter, err = cfg.sel.rssKiB(procs); err != nil {
		return r, err
	}
	if r.Opened > 0 {
		r.PerConnKiB = float64(r.RSSAfter-r.RSSBefore) / float64(r.Opened)
	}
	// Closed connections mean the server dropped idle sessions before the
	// measurement; report them rather than a flattering number.
	alive := 0
	for _, c := range clients {
		c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.r.Peek(1); err != nil && isTimeout(err) {
			alive++
		}
	}
	if alive < r.Opened {
		r.Codes["closed by server while idle"] = r.Opened - alive
	}
	return r, sleepCtx(ctx, cfg.hold)
}

// openIdle opens up to cfg.conns sessions, cfg.dialers at a time, and
// counts the failures in codes.
func openIdle(ctx context.Context, cfg idleConfig, codes counts, stderr io.Writer) []*client {
	var (
		mu      sync.Mutex
		clients []*client
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	var pw sync.WaitGroup
	pw.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				n := len(clients)
				mu.Unlock()
				fmt.Fprintf(stderr, "smtpload: idle %d/%d open\n", n, cfg.conns)
			}
		}
	})
	for range cfg.dialers {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(cfg.conns) {
				c, err := cfg.dial.dial(ctx)
				mu.Lock()
				if err != nil {
					codes[errClass(err)]++
				} else {
					clients = append(clients, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	pw.Wait()
	return clients
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
