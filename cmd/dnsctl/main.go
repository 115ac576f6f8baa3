// Command dnsctl takes one MX host out of DNS, proves it is idle, and puts
// its exact records back. See docs/dnsctl.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"mxq/cmd/internal/buildinfo"
	"mxq/dnsctl"
	"mxq/maintenance"
	"mxq/queue"
)

// Exit codes, documented in docs/dnsctl.md and in -h.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitRefused = 3 // refused for safety: nothing unsafe was done
	exitTimeout = 4
	exitCommand = 5 // maintain: the command failed (the host was restored unless told not to)
	exitNotOK   = 6 // tlsa status: a served key has no record, or an address did not answer
)

const usage = `dnsctl takes one MX host out of DNS, proves it is idle, and puts its exact
records back (RFC 2136 UPDATE signed with TSIG, checked on every
authoritative server).

Usage:
  dnsctl status  [flags]
  dnsctl drain   [flags] HOST
  dnsctl restore [flags] HOST
  dnsctl maintain [flags] [-no-restore-on-failure] HOST -- COMMAND [ARGS...]
  dnsctl tlsa status  [flags] [HOST]
  dnsctl tlsa publish [flags] -cert FILE [-cert FILE...] HOST
  dnsctl tlsa retire  [flags] [HOST]
  dnsctl tlsa rollover [flags] -cert FILE [-cert FILE...] HOST -- COMMAND [ARGS...]
  dnsctl -version

  status    the MX RRset on every authoritative server, each MX host's
            heartbeat and unconsumed mail, queue depth, maintenance state
  drain     preflight; lease; remove HOST's MX with a signed UPDATE whose
            prerequisite is the exact RRset; wait until every authoritative
            server agrees; wait the old TTL plus -margin; set the drain flag
            (mxd answers new connections 421); wait until HOST has no
            sessions and all mail it accepted is consumed; say "safe"
  restore   HOST's heartbeat is fresh; clear the drain flag; HOST answers
            220; put the original records back exactly; verify everywhere
  maintain  drain, run COMMAND, restore (also when COMMAND fails, unless
            -no-restore-on-failure)
  tlsa status   the TLSA records at _25._tcp.HOST on every authoritative
            server, the keys each address of HOST serves over STARTTLS
            (ECDSA and RSA), and whether each has a record; every MX host
            without HOST
  tlsa publish  add a TLSA 3 1 1 record for each -cert key without one, in
            one signed UPDATE guarded by the current RRset; wait until every
            authoritative server has it; wait the TTL plus -margin; say when
            HOST may switch to the new certificate
  tlsa retire   remove the records no address of HOST serves a key for;
            refused while the zone is unsigned, the servers disagree, an
            address cannot be asked, or a served key has no record; every
            MX host in turn without HOST
  tlsa rollover publish; run COMMAND (install the certificates, reload
            mxd); wait until HOST serves only the -cert keys; retire.
            Killed, it continues from the last phase done when run again
  -version  the version, and the record formats it reads (none)

HOST is the MX exchange name, the hostname its mxd reports. Killed at any
phase, drain and restore continue from the persisted phase when run again;
running either twice is harmless. Progress goes to stderr, the result to
stdout (JSON with -json).

Exit codes: 0 success, 1 error, 2 usage, 3 refused for safety (nothing unsafe
was done: preflight failed, key rejected, unsigned reply, concurrent change,
another maintenance), 4 timeout, 5 maintain: COMMAND failed, 6 tlsa status:
a served key has no record or an address did not answer.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is dnsctl with its arguments; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	f := newFlags(fs)
	jsonOut := fs.Bool("json", false, "print the result as JSON on stdout, progress as JSON lines on stderr")
	noRestore := fs.Bool("no-restore-on-failure", false, "maintain: leave HOST drained when COMMAND fails")
	var certs []string
	fs.Var(list{&certs}, "cert", "tlsa publish, rollover: a PEM certificate `file` whose key is to be published (repeatable)")
	if len(args) > 0 && (args[0] == "-version" || args[0] == "version") {
		fmt.Fprintln(stdout, "dnsctl", buildinfo.Version())
		fmt.Fprintln(stdout, "record formats: none (dnsctl reads heartbeats, drain flags and per-host counts, no queued record)")
		return exitOK
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fs.Usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	if sub == "tlsa" {
		switch {
		case len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help"):
			fs.Usage()
			return exitOK
		case len(rest) == 0 || !slices.Contains([]string{"status", "publish", "retire", "rollover"}, rest[0]):
			fmt.Fprintln(stderr, "dnsctl: tlsa needs status, publish, retire or rollover: see dnsctl -h")
			return exitUsage
		}
		sub, rest = "tlsa "+rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	o := &out{stdout: stdout, stderr: stderr, json: *jsonOut}
	c, err := f.resolve()
	if err != nil {
		return o.fail(&usageError{err.Error()})
	}
	pos := fs.Args()
	if strings.HasPrefix(sub, "tlsa ") {
		return tlsa(ctx, c, o, strings.TrimPrefix(sub, "tlsa "), pos, certs)
	}
	m, closeFleet, err := build(ctx, c, o)
	if err != nil {
		return o.fail(err)
	}
	defer closeFleet()
	switch {
	case sub == "status" && len(pos) == 0:
		return o.status(m.Status(ctx))
	case (sub == "drain" || sub == "restore") && len(pos) == 1:
		do := m.Drain
		if sub == "restore" {
			do = m.Restore
		}
		rep, err := do(ctx, pos[0])
		return o.report(rep, err)
	case sub == "maintain" && len(pos) >= 3 && pos[1] == "--":
		return maintain(ctx, m, o, pos[0], pos[2:], !*noRestore)
	}
	return o.fail(&usageError{fmt.Sprintf("bad command line %q: see dnsctl -h", args)})
}

// build wires the settings into a Maintenance.
func build(ctx context.Context, c *config, o *out) (*dnsctl.Maintenance, func(), error) {
	z, err := buildZone(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	q, err := queue.Open(c.Redis, c.Queue)
	if err != nil {
		return nil, nil, err
	}
	m := c.Maint
	m.Zone, m.Fleet, m.Lease, m.Progress = z, q, maintenance.New(q.Redis(), q.Name()), o.progress
	return &m, func() { q.Close() }, nil
}

// buildZone wires the DNS settings into a Zone.
func buildZone(ctx context.Context, c *config) (*dnsctl.Zone, error) {
	key, err := dnsctl.LoadKey(c.Key)
	if err != nil {
		return nil, err
	}
	z := &dnsctl.Zone{Name: c.Zone, Primary: c.Server, Servers: c.Authoritative, Key: key, Timeout: c.QueryTimeout}
	if z.Primary == "" {
		if z.Primary, err = dnsctl.PrimaryFromSOA(ctx, c.Zone); err != nil {
			return nil, err
		}
	}
	if c.NS {
		ns, err := z.NSAddrs(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w (use -ns=false and -authoritative to list servers by hand)", err)
		}
		z.Servers = append(z.Servers, ns...)
	}
	return z, nil
}

// out writes progress and results for people or, with json, for scripts.
type out struct {
	stdout, stderr io.Writer
	json           bool
}

func (o *out) progress(ev dnsctl.Event) {
	if o.json {
		json.NewEncoder(o.stderr).Encode(ev)
		return
	}
	phase := string(ev.Phase)
	if phase == "" {
		phase = "preflight"
	}
	fmt.Fprintf(o.stderr, "%s %-10s %s\n", ev.Time.Format("15:04:05"), phase, ev.Msg)
}

// code maps an error to its exit code.
func code(err error) int {
	var (
		u *usageError
		r *dnsctl.RefusedError
		k *dnsctl.KeyError
		n *dnsctl.UntrustedError
		c *dnsctl.ConflictError
		l *dnsctl.LagError
		t *dnsctl.TimeoutError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &r), errors.As(err, &k), errors.As(err, &n), errors.As(err, &c):
		return exitRefused
	case errors.As(err, &l), errors.As(err, &t):
		return exitTimeout
	}
	return exitError
}

func (o *out) fail(err error) int {
	rc := code(err)
	if o.json {
		json.NewEncoder(o.stdout).Encode(map[string]any{"error": err.Error(), "exit": rc})
	}
	fmt.Fprintf(o.stderr, "dnsctl: %v\n", err)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(o.stderr, "dnsctl: interrupted; the phase reached is saved: run the same command again to continue, or restore")
	}
	return rc
}

func (o *out) report(rep *dnsctl.Report, err error) int {
	if err != nil {
		return o.fail(err)
	}
	if o.json {
		json.NewEncoder(o.stdout).Encode(rep)
		return exitOK
	}
	switch {
	case rep.Note != "":
		fmt.Fprintln(o.stdout, rep.Note)
	case rep.Safe:
		fmt.Fprintf(o.stdout, "safe: %s is out of DNS and idle\n", rep.Host)
	default:
		fmt.Fprintf(o.stdout, "%s: %s done\n", rep.Host, rep.Action)
	}
	for _, s := range rep.Steps {
		fmt.Fprintf(o.stdout, "  %-11s %s\n", s.Phase, s.End.Sub(s.Start).Round(time.Millisecond))
	}
	return exitOK
}

func (o *out) status(s *dnsctl.Status, err error) int {
	if err != nil {
		return o.fail(err)
	}
	if o.json {
		json.NewEncoder(o.stdout).Encode(s)
	} else {
		s.WriteText(o.stdout)
	}
	return exitOK
}
