// Command bench measures mxd against Postfix under one SMTP load.
//
// In one run it starts, each on a free loopback port in a fresh temporary
// directory: Postfix's smtp-sink (SMTP without storage: the protocol limit),
// a throwaway Postfix whose smtpd accepts into its own queue (fsync as
// usual, then discard(8): nothing leaves the machine), and mxd built from
// this tree with its own redis-server (appendonly yes, appendfsync always).
// It drives the same load at each with cmd/smtpload, in rounds that
// alternate between the servers so that a noisy neighbour hurts all of them
// alike, then opens idle connections to mxd to measure its memory per
// connection. It prints a table and the ratios mxd / smtp-sink and
// mxd / postfix.
//
// Everything it starts is stopped when it returns, on SIGINT, SIGTERM and
// SIGHUP too, and everything it writes is under its temporary directory.
// It only ever connects to 127.0.0.1.
//
// Run it from the repository root: bench/run.sh, or go run ./bench.
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
	mxdWait  time.Duration
	// redisParams is appended to mxd's Redis URL as its query.
	redisParams string
}

// onExit registers f to run when the bench ends, last registered first.
func (b *bench) onExit(f func()) { b.cleanup = append(b.cleanup, f) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mxdSet stringsFlag
	n := fs.Int("n", 10000, "messages per target and round")
	c := fs.Int("c", 50, "concurrent SMTP sessions")
	size := fs.Int("size", 10240, "message size in bytes")
	perConn := fs.Int("per-conn", 0, "messages per connection before reconnecting (0: no limit)")
	warmup := fs.Int("warmup", 500, "messages sent to each target before it is measured")
	rounds := fs.Int("rounds", 3, "measured rounds per target; the table shows each target's median round")
	duration := fs.Duration("duration", 90*time.Second, "time bound of one measured load run")
	idle := fs.Int("idle", 5000, "idle connections to open to mxd for the RSS measurement (0: skip)")
	only := fs.String("targets", "smtp-sink,postfix,mxd", "comma list of targets to run")
	mxdWait := fs.Duration("mxd-wait", 0, "if cmd/mxd does not build yet, poll for it this long")
	redisParams := fs.String("mxd-redis-params", "", "query `parameters` for mxd's Redis URL, e.g. pool_size=100 (go-redis ParseURL options)")
	fs.Var(&mxdSet, "mxd-set", "extra `line` for mxd's TOML config, e.g. 'max_connections_per_ip = 10000' (repeatable)")
	keep := fs.Bool("keep", false, "keep the temporary directory (logs, queues, configs)")
	out := fs.String("json", "", "also write all results as JSON to this `file`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bench [flags]  (from the repository root)\n\nCompares mxd with smtp-sink and Postfix under the same SMTP load.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	targets := strings.Split(*only, ",")
	for _, t := range targets {
		if !slices.Contains([]string{"smtp-sink", "postfix", "mxd"}, t) {
			return fmt.Errorf("-targets: unknown target %q", t)
		}
	}

	dir, err := os.MkdirTemp("", "mxq-bench-")
	if err != nil {
		return err
	}
	// Postfix's daemons drop to the postfix user and must reach their
	// queue under this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	b := &bench{
		dir: dir, domain: "lists.example.org", rcpt: "bench@lists.example.org",
		stderr: stderr, mxdSet: mxdSet, mxdWait: *mxdWait, redisParams: *redisParams,
	}
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
		if *keep {
			b.logf("kept %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	b.logf("working in %s", dir)

	b.smtpload = filepath.Join(dir, "smtpload")
	if err := goBuild(ctx, b.smtpload, "./cmd/smtpload"); err != nil {
		return err
	}

	var started []*target
	for _, name := range targets {
		var t *target
		var err error
		switch name {
		case "smtp-sink":
			t, err = b.startSink(ctx)
		case "postfix":
			t, err = b.startPostfix(ctx)
		case "mxd":
			t, err = b.startMxd(ctx)
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		b.logf("%s listening on %s (pids %s)", t.name, t.addr, strings.Join(t.pids, ","))
		started = append(started, t)
	}

	// Idle connections first, while mxd is fresh: after the load runs its
	// heap has grown and new sessions would reuse memory that is already
	// resident, which flatters the number.
	var idleRes *idleResult
	for _, t := range started {
		if t.name == "mxd" && *idle > 0 {
			b.logf("idle: %d connections to mxd", *idle)
			r, err := b.idle(ctx, t, *idle)
			if err != nil {
				return fmt.Errorf("mxd idle: %w", err)
			}
			idleRes = &r
		}
	}

	load := loadArgs{n: *n, c: *c, size: *size, perConn: *perConn, duration: *duration}
	results := map[string][]loadResult{}
	accepted := map[string]int{} // warm-up included
	for _, t := range started {
		if *warmup > 0 {
			w := load
			w.n = *warmup
			w.duration = time.Minute
			r, err := b.load(ctx, t, w, false)
			if err != nil {
				return fmt.Errorf("%s warm-up: %w", t.name, err)
			}
			accepted[t.name] += r.Accepted
		}
	}
	for round := range *rounds {
		for _, t := range started {
			b.logf("round %d/%d: %s, %d messages of %d bytes over %d sessions", round+1, *rounds, t.name, load.n, load.size, load.c)
			r, err := b.load(ctx, t, load, true)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], r)
			accepted[t.name] += r.Accepted
		}
	}

	var checks []string
	for _, t := range started {
		if t.depth == nil {
			continue
		}
		d, err := t.depth()
		if err != nil {
			return fmt.Errorf("%s queue depth: %w", t.name, err)
		}
		check := fmt.Sprintf("%s: %d messages answered 250, %d in the queue", t.name, accepted[t.name], d)
		if d != accepted[t.name] {
			check += " (MISMATCH)"
		}
		b.logf("%s", check)
		checks = append(checks, check)
	}

	rep := report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: machine(),
		Load:    load.String(),
		Rounds:  *rounds,
		Results: results,
		Idle:    idleRes,
		Checks:  checks,
	}
	rep.summarize(targets)
	rep.print(stdout)
	if *out != "" {
		j, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// goBuild builds pkg (relative to the repository root) into out.
func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
