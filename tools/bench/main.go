// Command bench measures mxd against Postfix under one SMTP load.
//
// In one run it starts, each on a free loopback port in a fresh temporary
// directory: Postfix's smtp-sink (SMTP without storage: the protocol limit),
// a throwaway Postfix whose smtpd accepts into its own queue (fsync as
// usual, then discard(8): nothing leaves the machine), and mxd built from
// this tree with its own redis-server (appendonly yes, appendfsync always).
// It drives the same load at each with tools/smtpload, in rounds that
// alternate between the servers so that a noisy neighbour hurts all of them
// alike, then opens idle connections to mxd to measure its memory per
// connection. It prints a table and the ratios mxd / smtp-sink and
// mxd / postfix, with mxd's peak RSS (VmHWM) in each round next to the bytes
// its sessions had in flight.
//
// -mode presets other loads: "big" (8 MB messages over 100 sessions, mxd
// against Postfix), "mixed" (10 KiB messages alone, then while 8 MB messages
// flow to the same server, with the ratios of the two), "burst" (200
// sessions of 16 MB at once) and "tls" (STARTTLS, one message per
// connection, from 200 loopback addresses, with an RSA and an ECDSA
// certificate, full handshakes and resumed ones). -replicas N adds mxd whose
// Redis has N replicas on this machine, against mxd without; -mxd-ref
// COMMIT adds mxd built from that commit, against mxd from the tree.
//
// Everything it starts is stopped when it returns, on SIGINT, SIGTERM and
// SIGHUP too, and everything it writes is under its temporary directory.
// It only ever connects to 127.0.0.1.
//
// Run it from the repository root: tools/bench/run.sh, or go run
// ./tools/bench. It is a tool of the repository, not part of what is
// deployed (tools/README.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"mxq/internal/rspamd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is one run: its directory, its settings, and what to undo.
type bench struct {
	dir     string
	domain  string
	rcpt    string
	stderr  io.Writer
	cleanup []func()

	smtpload string // built binaries
	mxd      string
	mxq      string
	mxdSet   []string // extra mxd config lines
	// maxmemory is the maxmemory of mxd's redis-server, in bytes.
	maxmemory int64
	mxdWait   time.Duration
	// redisParams is appended to mxd's Redis URL as its query.
	redisParams string
	// source is smtpload's -source: the loopback addresses the load
	// comes from; "" for 127.0.0.1 alone.
	source string
	// replicas is how many replicas the Redis of mxd-replicas has, and
	// replicaFsync their appendfsync.
	replicas     int
	replicaFsync string

	// consumeDuring is -consume during: mxd's queue is consumed while the
	// loads run, not only after each.
	consumeDuring bool

	mxdRef  string               // -mxd-ref: the commit mxd-ref is built from
	rspamd  *rspamd.Server       // the milter of the -rspamd targets, once started
	certs   map[string]certFiles // by kind, made on first use
	dnsAddr string               // the bench's DNS server, once started
}

// onExit registers f to run when the bench ends, last registered first.
func (b *bench) onExit(f func()) { b.cleanup = append(b.cleanup, f) }

// exit runs what onExit registered.
func (b *bench) exit() {
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		b.cleanup[i]()
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// options are the bench's flags.
type options struct {
	load                 loadArgs
	warmup, rounds, idle int
	targets              []string
	mxdWait              time.Duration
	redisParams          string
	mxdSet               stringsFlag
	keep                 bool
	out                  string

	mode  string
	mixed bool          // the mixed measurement instead of the rounds
	big   loadArgs      // the load of big messages that runs during it
	lead  time.Duration // how long the big load runs before the measured one starts
	// budget is mxd's memory_budget in bytes; 0 leaves mxd's default.
	budget int64
	// replicas is how many replicas the Redis of mxd-replicas has.
	replicas     int
	replicaFsync string
	// mxdRef is the commit the target mxd-ref is built from.
	mxdRef string
	// consume is -consume: during or after.
	consume string
	// refSize and refMB are the reference SET's value size and MiB
	// (-redis-ref-size, -redis-ref-mb); refSize 0 runs none.
	refSize, refMB int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.load.n, "n", 10000, "messages per target and round")
	fs.IntVar(&o.load.c, "c", 50, "concurrent SMTP sessions")
	fs.IntVar(&o.load.size, "size", 10240, "message size in bytes")
	fs.IntVar(&o.load.perConn, "per-conn", 0, "messages per connection before reconnecting (0: no limit)")
	fs.StringVar(&o.load.source, "source", "", "loopback `addresses` the load comes from (smtpload -source), e.g. 127.0.0.2-127.0.0.201; with it mxd keeps its default per-address connection cap")
	fs.DurationVar(&o.load.duration, "duration", 90*time.Second, "time bound of one measured load run")
	fs.IntVar(&o.warmup, "warmup", -1, "messages sent to each target before it is measured (-1: 500, at most 64 MiB of them)")
	fs.IntVar(&o.rounds, "rounds", 3, "measured rounds per target; the table shows each target's median round")
	fs.IntVar(&o.idle, "idle", 5000, "idle connections to open to mxd for the RSS measurement (0: skip)")
	only := fs.String("targets", "smtp-sink,postfix,mxd", "comma list of targets to run: smtp-sink, postfix, mxd; postfix-rsa, mxd-ecdsa, ... for STARTTLS with that certificate, mxd-ecdsa-resume, ... with TLS sessions resumed; mxd-replicas (with -replicas); mxd-ref (with -mxd-ref)")
	fs.IntVar(&o.replicas, "replicas", 0, "`N` replicas of Redis on this machine for the target mxd-replicas, which is added to the default targets; mxd is configured with replicas = N")
	fs.StringVar(&o.mxdRef, "mxd-ref", "", "`commit` to build the target mxd-ref from (git archive), which is added to the default targets: mxd from this tree against that one in the same run")
	fs.StringVar(&o.replicaFsync, "replica-fsync", "always", "appendfsync of the replicas: always (as the primary) or everysec")
	fs.DurationVar(&o.mxdWait, "mxd-wait", 0, "if cmd/mxd does not build yet, poll for it this long")
	fs.StringVar(&o.redisParams, "mxd-redis-params", "", "query `parameters` for mxd's Redis URL, e.g. pool_size=100 (go-redis ParseURL options)")
	fs.Var(&o.mxdSet, "mxd-set", "extra `line` for mxd's TOML config, e.g. 'max_recipients = 1000' (repeatable)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, queues, configs)")
	fs.StringVar(&o.out, "json", "", "also write all results as JSON to this `file`")
	fs.StringVar(&o.mode, "mode", "", "preset: big, mixed or burst for big messages, tls for STARTTLS one message per connection, hold and hold-trickle for sessions that hold memory and send little (docs/benchmarks.md); other flags override it")
	fs.BoolVar(&o.mixed, "mixed", false, "measure the -n/-c/-size load alone and while the -big-* load runs against the same target, instead of the rounds")
	fs.IntVar(&o.big.n, "big-n", 2000, "-mixed: messages of the big load, at most (it is stopped when the measured load ends)")
	fs.IntVar(&o.big.c, "big-c", 30, "-mixed: sessions of the big load")
	fs.IntVar(&o.big.size, "big-size", 8000000, "-mixed: message size of the big load in bytes")
	fs.DurationVar(&o.lead, "mixed-lead", 5*time.Second, "-mixed: how long the big load runs before the measured load starts")
	fs.IntVar(&o.load.hold.n, "hold", 0, "keep this `number` of sessions that take memory at the server and send little open while each measured load runs (smtpload -hold)")
	fs.StringVar(&o.load.hold.kind, "hold-kind", "header", "what the -hold sessions do: header (a header section that never ends) or trickle (a body trickled at 2 kB/s)")
	fs.StringVar(&o.load.hold.source, "hold-source", "127.0.1.1-127.0.1.120", "loopback `addresses` the -hold sessions come from, in turn")
	fs.DurationVar(&o.load.hold.lead, "hold-lead", 10*time.Second, "how long the -hold sessions are open before the load starts")
	fs.IntVar(&o.refSize, "redis-ref-size", 262144, "after the rounds, run redis-benchmark -t set -d `bytes` -c 2 against the first mxd's redis-server as the reference for Redis CPU per MB stored (0: none)")
	fs.IntVar(&o.refMB, "redis-ref-mb", 512, "MiB the reference SETs write")
	fs.StringVar(&o.consume, "consume", "during", "when the bench consumes mxd's queue (acknowledging every message, which deletes it): during each load and after it, as Postfix's queue manager discards while smtpd receives, or only after each load (the queue grows through a round, and every body is new memory to Redis)")
	budget := fs.String("mxd-budget", "", "mxd's memory_budget, e.g. 256MiB (unset: mxd's default, or none where mxd has no such key)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bench [flags]  (from the repository root)\n\nCompares mxd with smtp-sink and Postfix under the same SMTP load.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	targetsGiven := false
	fs.Visit(func(f *flag.Flag) { targetsGiven = targetsGiven || f.Name == "targets" })
	if !targetsGiven && o.mode == "" && o.replicas > 0 {
		*only += ",mxd-replicas"
	}
	if !targetsGiven && o.mode == "" && o.mxdRef != "" {
		*only += ",mxd-ref"
	}
	if err := applyMode(fs, o.mode); err != nil {
		return o, err
	}
	if *budget != "" {
		n, err := parseSize(*budget)
		if err != nil {
			return o, fmt.Errorf("-mxd-budget: %w", err)
		}
		o.budget = n
	}
	if o.warmup < 0 {
		o.warmup = autoWarmup(o.load.size)
	}
	if o.load.hold.n <= 0 {
		o.load.hold = holdArgs{}
	}
	o.big.duration = o.load.duration + o.lead
	o.big.source = o.load.source
	if err := o.setTargets(*only); err != nil {
		return o, err
	}
	if o.rounds < 1 || o.load.n < 1 || o.load.c < 1 {
		return o, fmt.Errorf("-rounds, -n and -c must be positive")
	}
	if o.mixed && (o.big.n < 1 || o.big.c < 1) {
		return o, fmt.Errorf("-big-n and -big-c must be positive")
	}
	return o, nil
}

// setTargets checks the -targets list, and what its targets need.
func (o *options) setTargets(list string) error {
	o.targets = strings.Split(list, ",")
	for _, t := range o.targets {
		spec, err := parseTarget(t)
		if err != nil {
			return fmt.Errorf("-targets: %w", err)
		}
		if spec.replicas && o.replicas < 1 {
			return fmt.Errorf("-targets: %s needs -replicas N", t)
		}
		if spec.ref && o.mxdRef == "" {
			return fmt.Errorf("-targets: %s needs -mxd-ref COMMIT", t)
		}
	}
	if o.replicas < 0 {
		return fmt.Errorf("-replicas must not be negative")
	}
	if o.consume != "during" && o.consume != "after" {
		return fmt.Errorf("-consume %q: want during or after", o.consume)
	}
	if o.replicaFsync != "always" && o.replicaFsync != "everysec" {
		return fmt.Errorf("-replica-fsync %q: want always or everysec", o.replicaFsync)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mxq-bench-")
	if err != nil {
		return err
	}
	b := &bench{
		dir: dir, domain: "lists.example.org", rcpt: "bench@lists.example.org",
		stderr: stderr, mxdSet: o.mxdConfig(), mxdWait: o.mxdWait, redisParams: o.redisParams,
		maxmemory: redisMaxmemory(o), source: o.load.source,
		replicas: o.replicas, replicaFsync: o.replicaFsync, mxdRef: o.mxdRef,
		consumeDuring: o.consume == "during",
	}
	defer func() {
		b.exit()
		if o.keep {
			b.logf("kept %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	// Postfix's daemons drop to the postfix user and must reach their
	// queue under this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	b.logf("working in %s", dir)
	b.smtpload = filepath.Join(dir, "smtpload")
	if err := goBuild(ctx, b.smtpload, "./tools/smtpload"); err != nil {
		return err
	}
	started, err := b.startTargets(ctx, o.targets)
	if err != nil {
		return err
	}
	rep := report{Load: o.load.String(), Size: o.load.size, Rounds: o.rounds, Budget: o.budget}
	// Idle connections first, while mxd is fresh: after the load runs its
	// heap has grown and new sessions would reuse memory that is already
	// resident, which flatters the number.
	if rep.Idle, err = b.measureIdle(ctx, started, o.idle); err != nil {
		return err
	}
	var accepted map[string]int
	if o.mixed {
		rep.Mixed = &mixedReport{Small: o.load.String(), Big: o.big.String(), Lead: o.lead.String(), Rounds: o.rounds}
		accepted, err = b.measureMixed(ctx, started, o, rep.Mixed)
	} else {
		accepted, err = b.measureLoad(ctx, started, o, &rep)
	}
	if err != nil {
		return err
	}
	if !o.mixed && o.refSize > 0 {
		if rep.RedisRef, err = b.reference(ctx, started, o); err != nil {
			return err
		}
	}
	if rep.Checks, err = b.checkQueues(started, accepted); err != nil {
		return err
	}
	rep.Date = time.Now().UTC().Format(time.RFC3339)
	rep.Machine = machine()
	rep.summarize(o.targets)
	rep.print(stdout)
	if o.out != "" {
		j, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// reference runs the reference SET against the first target with its own
// redis-server, if any.
func (b *bench) reference(ctx context.Context, started []*target, o options) ([]*redisRef, error) {
	for _, t := range started {
		if t.redisAddr == "" {
			continue
		}
		var refs []*redisRef
		for _, newKeys := range []bool{false, true} {
			r, err := b.referenceSet(ctx, t.redisAddr, t.redisPid, o.refSize, o.refMB, newKeys)
			if err != nil {
				return nil, err
			}
			refs = append(refs, r)
		}
		return refs, nil
	}
	return nil, nil
}

// measureIdle opens n idle connections to mxd, if it is a target.
func (b *bench) measureIdle(ctx context.Context, started []*target, n int) (*idleResult, error) {
	for _, t := range started {
		if t.server == "mxd" && n > 0 {
			b.logf("idle: %d connections to mxd", n)
			r, err := b.idle(ctx, t, n)
			if err != nil {
				return nil, fmt.Errorf("mxd idle: %w", err)
			}
			return &r, nil
		}
	}
	return nil, nil
}

// warmup sends o.warmup messages of the measured load to every target and
// returns how many each server accepted.
func (b *bench) warmup(ctx context.Context, started []*target, o options) (map[string]int, error) {
	accepted := map[string]int{}
	for _, t := range started {
		if o.warmup > 0 {
			w := o.load
			w.n = o.warmup
			w.duration = time.Minute
			r, err := b.load(ctx, t, w, false)
			if err != nil {
				return nil, fmt.Errorf("%s warm-up: %w", t.name, err)
			}
			accepted[t.server] += r.Accepted
		}
	}
	return accepted, nil
}

// measureLoad warms every target up, then runs the rounds, alternating
// between targets. It returns how many messages each server accepted,
// warm-up included.
func (b *bench) measureLoad(ctx context.Context, started []*target, o options, rep *report) (map[string]int, error) {
	rep.Results = map[string][]loadResult{}
	accepted, err := b.warmup(ctx, started, o)
	if err != nil {
		return nil, err
	}
	for round := range o.rounds {
		for _, t := range started {
			l := o.load
			if t.pacedBy != "" {
				rs := rep.Results[t.pacedBy]
				if len(rs) <= round || rs[round].Rate <= 0 {
					return nil, fmt.Errorf("%s: no rate of %s in round %d to pace it at", t.name, t.pacedBy, round+1)
				}
				l.rate = rs[round].Rate
			}
			b.logf("round %d/%d: %s, %s", round+1, o.rounds, t.name, l)
			var r loadResult
			peak, err := b.peak(t, func() (err error) {
				r, err = b.load(ctx, t, l, true)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			if peak > 0 {
				r.PeakKiB, r.InFlight = peak, o.load.inFlight()
				b.logf("%s: peak RSS (VmHWM) %s for %s in flight", t.name, mb(peak*1024), mb(r.InFlight))
			}
			rep.Results[t.name] = append(rep.Results[t.name], r)
			accepted[t.server] += r.Accepted
		}
	}
	return accepted, nil
}

// mxdConfig is the -mxd-set lines, with memory_budget when -mxd-budget is
// given and max_message_bytes when a load's messages are bigger than mxd's
// default (32 MiB) allows, unless -mxd-set sets them.
func (o options) mxdConfig() []string {
	lines := slices.Clone([]string(o.mxdSet))
	set := func(key string) bool {
		return slices.ContainsFunc(lines, func(l string) bool {
			k, _, _ := strings.Cut(l, "=")
			return strings.TrimSpace(k) == key
		})
	}
	if o.budget > 0 && !set("memory_budget") {
		lines = append(lines, fmt.Sprintf("memory_budget = %d", o.budget))
	}
	size := o.load.size
	if o.mixed {
		size = max(size, o.big.size)
	}
	if size > 32<<20 && !set("max_message_bytes") {
		lines = append(lines, fmt.Sprintf("max_message_bytes = %d", size))
	}
	return lines
}

// peak runs f and returns the peak RSS (VmHWM, KiB) of t's server while it
// ran; 0 for a target whose memory is not measured.
func (b *bench) peak(t *target, f func() error) (int64, error) {
	if t.memPid == 0 {
		return 0, f()
	}
	if err := resetPeakRSS(t.memPid); err != nil {
		return 0, fmt.Errorf("%s: reset VmHWM: %w", t.name, err)
	}
	if err := f(); err != nil {
		return 0, err
	}
	return peakRSS(t.memPid)
}

// checkQueues compares, for servers that can tell, the messages answered
// 250 with the messages in the queue.
func (b *bench) checkQueues(started []*target, accepted map[string]int) ([]string, error) {
	var checks []string
	seen := map[string]bool{}
	for _, t := range started {
		if t.depth == nil || seen[t.server] {
			continue
		}
		seen[t.server] = true
		d, err := t.depth()
		if err != nil {
			return nil, fmt.Errorf("%s queue depth: %w", t.server, err)
		}
		check := fmt.Sprintf("%s: %d messages answered 250, %d queued (consumed by the bench or still in the queue)", t.server, accepted[t.server], d)
		if d != accepted[t.server] {
			check += " (MISMATCH)"
		}
		b.logf("%s", check)
		checks = append(checks, check)
	}
	return checks, nil
}

// goBuild builds pkg (relative to the repository root) into out.
func goBuild(ctx context.Context, out, pkg string) error {
	return goBuildIn(ctx, "", out, pkg)
}

// goBuildIn builds pkg (relative to dir, "" for the current directory)
// into out.
func goBuildIn(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
