package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// loadArgs is the load given to every target.
type loadArgs struct {
	n, c, size, perConn int
	duration            time.Duration
	source              string // smtpload -source; "" for 127.0.0.1
	hold                holdArgs
	rate                float64 // smtpload -rate: messages started a second; 0 unpaced
}

// holdArgs are smtpload's -hold sessions, which take memory at the
// server and send little while a measured load runs (not the warm-up).
type holdArgs struct {
	n            int
	kind, source string
	lead         time.Duration
}

func (l loadArgs) String() string {
	s := fmt.Sprintf("%d messages of %d bytes over %d sessions with PIPELINING", l.n, l.size, l.c)
	if l.perConn > 0 {
		s += fmt.Sprintf(", %d per connection", l.perConn)
	}
	if l.source != "" {
		s += ", from " + l.source
	}
	if h := l.hold; h.n > 0 {
		s += fmt.Sprintf(", while %d %s-holding sessions from %s stay open", h.n, h.kind, h.source)
	}
	if l.rate > 0 {
		s += fmt.Sprintf(", started at %.1f a second", l.rate)
	}
	return s
}

// loadResult is what smtpload -json prints (the fields the bench uses).
type loadResult struct {
	Attempted int            `json:"attempted"`
	Accepted  int            `json:"accepted"`
	ElapsedNs int64          `json:"elapsed_ns"`
	Rate      float64        `json:"msgs_per_sec"`
	Latency   latency        `json:"latency"`
	Codes     map[string]int `json:"codes"`
	CPU       []cpuUse       `json:"cpu"`
	SelfCPU   float64        `json:"self_cpu_seconds"`
	TimedOut  bool           `json:"stopped_by_duration"`
	Pipelined bool           `json:"pipelined"`
	// Connection is the latency of whole connections, connect to 221,
	// with -per-conn.
	Connection *latency   `json:"connection_latency,omitempty"`
	TLS        *tlsCounts `json:"tls,omitempty"`
	// Hold is what became of the -hold sessions.
	Hold *holdResult `json:"hold,omitempty"`
	// Redis is what mxd's redis-server spent (set by the bench).
	Redis *redisUse `json:"redis,omitempty"`

	// Set by the bench: the peak RSS (VmHWM) of the target's server during
	// the run, and the bytes the sessions held in flight (sessions ×
	// message size).
	PeakKiB  int64 `json:"peak_rss_kib,omitempty"`
	InFlight int64 `json:"bytes_in_flight,omitempty"`
}

// holdResult is smtpload's account of its -hold sessions.
type holdResult struct {
	Kind      string         `json:"kind"`
	Requested int            `json:"requested"`
	Opened    int            `json:"opened"`
	Codes     map[string]int `json:"codes"`
	StillOpen int            `json:"still_open"`
}

type latency struct {
	P50 int64 `json:"p50_ns"`
	P90 int64 `json:"p90_ns"`
	P99 int64 `json:"p99_ns"`
	Max int64 `json:"max_ns"`
}

// tlsCounts are the handshakes of a run with -starttls.
type tlsCounts struct {
	Handshakes int            `json:"handshakes"`
	Full       int            `json:"full"`
	Resumed    int            `json:"resumed"`
	Versions   map[string]int `json:"versions"`
}

type cpuUse struct {
	Sel     string             `json:"sel"`
	Seconds float64            `json:"seconds"`
	Per10k  float64            `json:"seconds_per_10k"`
	ByName  map[string]float64 `json:"by_name"`
}

// idleResult is what smtpload -idle -json prints.
type idleResult struct {
	Requested  int            `json:"requested"`
	Opened     int            `json:"opened"`
	Codes      map[string]int `json:"codes"`
	RSSBefore  int64          `json:"rss_before_kib"`
	RSSAfter   int64          `json:"rss_after_kib"`
	PerConnKiB float64        `json:"rss_per_conn_kib"`
}

// smtploadJSON runs the load tool with -json, its progress on the bench's
// stderr, and decodes its result into v.
func (b *bench) smtploadJSON(ctx context.Context, v any, args ...string) error {
	return b.smtploadUntil(ctx, nil, v, args...)
}

// smtploadUntil is smtploadJSON for a load that stop may end early: when
// stop is closed smtpload gets SIGINT, finishes the transactions it has
// started, and reports what it measured.
func (b *bench) smtploadUntil(ctx context.Context, stop <-chan struct{}, v any, args ...string) error {
	cmd := exec.CommandContext(ctx, b.smtpload, append([]string{"-json"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("smtpload %v: %w", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	stopped := false
	select {
	case err = <-done:
	case <-stop:
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		err = <-done
	}
	// Interrupted, smtpload prints its result and then exits 1.
	if err != nil && !(stopped && out.Len() > 0) {
		return fmt.Errorf("smtpload %v: %w", args, err)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return fmt.Errorf("smtpload output %q: %w", out.String(), err)
	}
	return nil
}

// load drives l at t, then lets t settle. measure adds the CPU measurement
// of t's processes.
func (b *bench) load(ctx context.Context, t *target, l loadArgs, measure bool) (loadResult, error) {
	var before redisSnap
	if measure && t.redisAddr != "" {
		var err error
		if before, err = snapRedis(t.redisAddr, t.redisPid); err != nil {
			return loadResult{}, fmt.Errorf("%s redis: %w", t.name, err)
		}
	}
	r, err := b.sendConsuming(ctx, t, l, measure, nil)
	if err != nil {
		return r, err
	}
	if measure && t.redisAddr != "" {
		after, err := snapRedis(t.redisAddr, t.redisPid)
		if err != nil {
			return r, fmt.Errorf("%s redis: %w", t.name, err)
		}
		r.Redis = after.use(before, float64(r.Accepted)*float64(l.size)/(1<<20))
		b.logf("%s: redis-server %s", t.name, r.Redis)
	}
	if err := b.settle(ctx, t); err != nil {
		return r, err
	}
	if measure {
		b.logf("%s: %.0f msgs/s, p50 %.1f ms, p99 %.1f ms, replies %v", t.name, r.Rate, ms(r.Latency.P50), ms(r.Latency.P99), r.Codes)
		if h := r.Hold; h != nil {
			b.logf("%s: %s", t.name, h)
		}
	}
	return r, nil
}

// sendConsuming is send with t's consumer running meanwhile, as
// Postfix's queue manager discards while its smtpd receives (-consume
// during).
func (b *bench) sendConsuming(ctx context.Context, t *target, l loadArgs, measure bool, stop <-chan struct{}) (loadResult, error) {
	if t.consume == nil || !b.consumeDuring {
		return b.send(ctx, t, l, measure, stop)
	}
	stopConsumer := t.consume(ctx)
	r, err := b.send(ctx, t, l, measure, stop)
	if cerr := stopConsumer(); cerr != nil && err == nil {
		err = fmt.Errorf("%s consumer: %w", t.name, cerr)
	}
	return r, err
}

// settle waits until t has finished the work the loads left behind.
func (b *bench) settle(ctx context.Context, t *target) error {
	if t.settle == nil {
		return nil
	}
	return t.settle(ctx)
}

// send drives l at t with smtpload and returns its result; stop, when
// closed, ends the load early.
func (b *bench) send(ctx context.Context, t *target, l loadArgs, measure bool, stop <-chan struct{}) (loadResult, error) {
	args := []string{
		"-server", t.addr, "-to", b.rcpt, "-from", senderAddr, "-helo", senderHost,
		"-n", strconv.Itoa(l.n), "-c", strconv.Itoa(l.c), "-size", strconv.Itoa(l.size),
		"-per-conn", strconv.Itoa(l.perConn), "-duration", l.duration.String(), "-progress", "5s",
	}
	if l.source != "" {
		args = append(args, "-source", l.source)
	}
	if l.rate > 0 {
		args = append(args, "-rate", strconv.FormatFloat(l.rate, 'f', 1, 64))
	}
	if h := l.hold; measure && h.n > 0 {
		args = append(args, "-hold", strconv.Itoa(h.n), "-hold-kind", h.kind, "-hold-source", h.source, "-hold-lead", h.lead.String())
	}
	args = append(args, t.client...)
	if measure {
		for _, p := range t.pids {
			args = append(args, "-pid", p)
		}
	} else {
		args = append(args, "-progress", "0")
	}
	var r loadResult
	err := b.smtploadUntil(ctx, stop, &r, args...)
	return r, err
}

// idle opens n idle sessions to t and measures its RSS per session.
func (b *bench) idle(ctx context.Context, t *target, n int) (idleResult, error) {
	var r idleResult
	err := b.smtploadJSON(ctx, &r, "-server", t.addr, "-helo", senderHost, "-idle", strconv.Itoa(n), "-pid", t.pids[0], "-idle-dialers", "50")
	if err == nil {
		b.logf("%s idle: %d of %d open, %.1f KiB per connection, failures %v", t.name, r.Opened, r.Requested, r.PerConnKiB, r.Codes)
	}
	return r, err
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// machine describes this machine for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				model = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s: %d × %s, Linux %s", host, numCPU(), model, bytes.TrimSpace(kernel))
}

func (h *holdResult) String() string {
	return fmt.Sprintf("%d %s-holding sessions opened (%d asked for, opened again when closed), %d still open at the end; replies %s",
		h.Opened, h.Kind, h.Requested, h.StillOpen, codesText(h.Codes))
}
