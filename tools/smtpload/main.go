// Command smtpload is the SMTP load generator of mxq's benchmark.
//
// It opens C concurrent SMTP sessions to one server and sends N messages of
// S bytes, with PIPELINING (RFC 2920) when the server offers it: MAIL, RCPT
// and DATA go out in one write, then the message. It reports messages per
// second, the latency from the end of the data (the final CRLF.CRLF) to the
// server's reply, the replies by code, and optionally the CPU time that
// named server processes used, per 10,000 messages, read from /proc.
//
// With -starttls each session negotiates TLS (RFC 3207) before its first
// MAIL, -tls-resume offers later connections an earlier connection's TLS
// session, and the result counts full and resumed handshakes. -source binds
// the connections to loopback source addresses in turn. With -per-conn it
// also reports the latency of the whole connection, connect to 221.
//
// With -idle N it instead opens N sessions, takes each past the greeting and
// EHLO, holds them, and reports the server's RSS growth per session.
//
// With -hold N it first opens N sessions that take memory at the server and
// then send little (a header section that never ends, or a body trickled
// slowly), from -hold-source addresses, keeps them while the load runs, and
// reports what became of them: the load's latency then shows what such
// sessions cost other senders.
//
// It is a measuring tool for loopback and test networks: it sends as fast as
// the server accepts. It is not part of what is deployed (tools/README.md);
// tools/bench drives it.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smtpload:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable flag whose values may also be comma lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

const usage = `Usage: smtpload [flags]

Sends -n messages of -size bytes over -c concurrent SMTP sessions to -server,
and reports messages/s, the latency from the end of DATA (CRLF.CRLF) to the
reply (p50, p90, p99, max; 250 replies only), replies counted by stage and
code ("data-end 250", "rcpt 550", "error timeout", ...), and with -pid the
CPU seconds the given processes used during the run, per 10,000 accepted
messages (utime+stime of the process and its descendants, reaped children
included, from /proc/PID/stat).

With -idle N it opens N idle sessions instead and reports the RSS growth
(VmRSS in /proc/PID/status) of the first -pid per session. RLIMIT_NOFILE is
raised to fit; the loopback ephemeral port range (net.ipv4.ip_local_port_range)
bounds N at about 28,000 to one server address.

With -hold N it first opens N sessions, spread over the -hold-source
addresses, that each say DATA and then either send -hold-bytes of header
fields without the empty line that ends them and nothing more (-hold-kind
header), or a short header and then -hold-rate bytes of body every second
(-hold-kind trickle); after -hold-lead the load runs while they stay open
(one the server ends is opened again, unless -hold-reopen=false), and the
result counts the replies they got (e.g. "data 451 4.3.2") and those still
open at the end.

With -starttls every session negotiates TLS before its first MAIL;
-tls-resume lets later connections resume an earlier one's TLS session, and
the result counts the full and resumed handshakes. -source spreads the
connections over loopback source addresses (127.0.0.2-127.0.0.254), as if
from many senders. -per-conn 1 sends one message per connection, the way
most of the internet delivers mail; the result then also has the latency
of the whole connection, from the connect to the 221 reply to QUIT.

Flags:
`

// parseArgs reads the flags into a load, an idle and a hold configuration;
// idle.conns is zero in load mode, hold.n without -hold. asJSON is -json.
func parseArgs(args []string, stderr io.Writer) (load loadConfig, idle idleConfig, hold holdConfig, asJSON bool, err error) {
	fs := flag.NewFlagSet("smtpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rcpts, pids listFlag
	fs.StringVar(&load.server, "server", "127.0.0.1:2525", "SMTP server `host:port` to send to")
	fs.StringVar(&load.helo, "helo", "smtpload.invalid", "`name` to give in EHLO")
	fs.StringVar(&load.from, "from", "smtpload@smtpload.invalid", "envelope sender (MAIL FROM) `address`; also the From header")
	fs.Var(&rcpts, "to", "envelope recipient `address` (RCPT TO); repeat, or give a comma list, for several per message (default bench@lists.example.org)")
	fs.IntVar(&load.n, "n", 10000, "`number` of messages to send in all")
	fs.IntVar(&load.sessions, "c", 50, "`number` of concurrent SMTP sessions")
	fs.IntVar(&load.size, "size", 10240, "size of each message in `bytes`, headers and body, CRLF line endings, before dot-stuffing")
	fs.IntVar(&load.perConn, "per-conn", 0, "messages per session before QUIT and a new connection; 0 sends all of a session's share over one connection. With it, the result also has the latency of the whole connection: from the start of the connect (TCP, greeting, EHLO, STARTTLS, every transaction) to the 221 reply to QUIT; -per-conn 1 measures mail sent one message per connection")
	fs.Float64Var(&load.rate, "rate", 0, "start at most this `number` of messages a second in all, evenly spaced (0: each session starts its next message as soon as the last is answered); a server that cannot keep up falls behind, and the result's rate says by how much. To compare servers' CPU per message doing the same work per second")
	fs.DurationVar(&load.duration, "duration", 5*time.Minute, "stop starting new messages after this long, even if fewer than -n were sent")
	fs.DurationVar(&load.timeout, "timeout", time.Minute, "how long to wait for each reply (and to connect), and for each stall while writing the data, before the session counts as failed")
	fs.DurationVar(&load.dataWait, "data-timeout", 10*time.Minute, "how long to wait for the reply to the end of the data (RFC 5321 §4.5.3.2.6: 10 minutes)")
	fs.DurationVar(&load.progress, "progress", time.Second, "interval of the progress lines on stderr; 0 for none")
	fs.Var(&pids, "pid", "measure the CPU time (load mode) or RSS (idle mode) of `process`: a PID with all its descendants (for Postfix, the master's pid covers smtpd, cleanup, qmgr, ...); a NAME (comm), every process of that name, e.g. redis-server; or NAME@PID, the processes of that name among PID's descendants, e.g. smtpd@1234. Repeat or give a comma list: each is reported on its own")
	fs.IntVar(&idle.conns, "idle", 0, "idle mode: open this `number` of sessions past EHLO, hold them, and report the RSS growth of the first -pid per session instead of sending mail")
	fs.IntVar(&idle.dialers, "idle-dialers", 50, "idle mode: `number` of connections opened at the same time")
	fs.DurationVar(&idle.settle, "idle-settle", 3*time.Second, "idle mode: wait this long after the last connection before measuring RSS")
	fs.DurationVar(&idle.hold, "idle-hold", 0, "idle mode: keep the sessions open this much longer after measuring")
	fs.IntVar(&hold.n, "hold", 0, "open this `number` of sessions that take memory at the server and send little, keep them open while the load runs, and report what became of them")
	fs.StringVar(&hold.kind, "hold-kind", holdHeader, "what the -hold sessions do after DATA: header (send -hold-bytes of header fields that never end, then nothing) or trickle (a short header, then -hold-rate bytes of body every second)")
	fs.IntVar(&hold.bytes, "hold-bytes", 90<<10, "-hold-kind header: `bytes` of header fields each session sends")
	fs.IntVar(&hold.rate, "hold-rate", 2048, "-hold-kind trickle: `bytes` of body each session sends every second")
	fs.DurationVar(&hold.lead, "hold-lead", 5*time.Second, "wait this long after the -hold sessions are open before the load starts")
	fs.IntVar(&hold.dialers, "hold-dialers", 50, "`number` of -hold sessions opened at the same time")
	fs.BoolVar(&hold.reopen, "hold-reopen", true, "open a -hold session again when the server ends one, as an attacker would; -hold-reopen=false leaves it closed")
	var holdSources string
	fs.StringVar(&holdSources, "hold-source", "", "connect the -hold sessions from these loopback `addresses` in turn, as -source")
	var sources string
	var tlsOpt tlsFlags
	fs.BoolVar(&tlsOpt.startTLS, "starttls", false, "say STARTTLS (RFC 3207) after EHLO and EHLO again before MAIL; a session whose server does not offer it fails as \"starttls not-offered\". The result counts the handshakes, full and resumed, by TLS version")
	fs.BoolVar(&tlsOpt.verify, "tls-verify", true, "with -starttls, verify the server's certificate against the system roots and -tls-server-name; -tls-verify=false for a self-signed bench certificate")
	fs.StringVar(&tlsOpt.serverName, "tls-server-name", "", "with -starttls, the `name` sent as SNI and verified in the certificate (default: the host of -server)")
	fs.BoolVar(&tlsOpt.resume, "tls-resume", false, "with -starttls, offer each new connection a TLS session from an earlier one (TLS 1.3 tickets, TLS 1.2 tickets or session IDs, from one session cache shared by all connections); without it every handshake is a full one")
	fs.StringVar(&sources, "source", "", "connect from these loopback `addresses` in turn: one address, a range within one /24 (127.0.0.2-127.0.0.254), or a comma list of either; default: the kernel's choice")
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON object on stdout instead of a table")
	showVersion := fs.Bool("version", false, "print the version and exit (smtpload speaks SMTP only: it reads and writes no queue record)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err = fs.Parse(args); err != nil {
		return
	}
	if *showVersion {
		err = errVersion
		return
	}
	if fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		return
	}
	load.rcpts = rcpts
	if len(load.rcpts) == 0 {
		load.rcpts = []string{"bench@lists.example.org"}
	}
	for _, p := range pids {
		s, perr := parseProcSels(p)
		if perr != nil {
			err = fmt.Errorf("-pid: %w", perr)
			return
		}
		load.sels = append(load.sels, s...)
	}
	d := &dialer{server: load.server, helo: load.helo, timeout: load.timeout}
	if sources != "" {
		if d.sources, err = parseSources(sources); err != nil {
			err = fmt.Errorf("-source: %w", err)
			return
		}
	}
	if d.tls, err = tlsOpt.config(load.server); err != nil {
		return
	}
	load.dial, idle.dial = d, d
	hold.from, hold.rcpt = load.from, load.rcpts[0]
	hold.dial = &dialer{server: load.server, helo: load.helo, timeout: load.timeout, tls: d.tls}
	if holdSources != "" {
		if hold.dial.sources, err = parseSources(holdSources); err != nil {
			err = fmt.Errorf("-hold-source: %w", err)
			return
		}
	}
	if hold.kind != holdHeader && hold.kind != holdTrickle {
		err = fmt.Errorf("-hold-kind %q: want %s or %s", hold.kind, holdHeader, holdTrickle)
		return
	}
	idle.server, idle.helo, idle.timeout = load.server, load.helo, load.timeout
	idle.dialers = max(idle.dialers, 1)
	switch {
	case idle.conns > 0 && len(load.sels) == 0:
		err = fmt.Errorf("-idle needs -pid: the server whose RSS to measure")
	case idle.conns > 0:
		idle.sel = load.sels[0]
	case load.n <= 0 || load.sessions <= 0:
		err = fmt.Errorf("-n and -c must be positive")
	case load.rate < 0:
		err = fmt.Errorf("-rate %g: must be 0 (unpaced) or a positive number of messages a second", load.rate)
	}
	load.sessions = min(load.sessions, load.n)
	return
}

// tlsFlags are the -starttls and -tls-* flags.
type tlsFlags struct {
	startTLS, verify, resume bool
	serverName               string
}

// config is the client TLS configuration the flags ask for, nil without
// -starttls.
func (f tlsFlags) config(server string) (*tls.Config, error) {
	if !f.startTLS {
		if f.resume || !f.verify || f.serverName != "" {
			return nil, fmt.Errorf("-tls-resume, -tls-verify and -tls-server-name need -starttls")
		}
		return nil, nil
	}
	name := f.serverName
	if name == "" {
		host, _, err := net.SplitHostPort(server)
		if err != nil {
			return nil, fmt.Errorf("-server: %w", err)
		}
		name = host
	}
	cfg := &tls.Config{ServerName: name, InsecureSkipVerify: !f.verify}
	if f.resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	return cfg, nil
}

// version is Go's version of the main module: a pseudo-version naming
// the commit (and +dirty) that go build stamps from a git checkout, or
// "dev" without a stamp. The deployed commands print the commit alone
// (cmd/internal/buildinfo), a package Go keeps from tools/.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// errVersion is parseArgs's answer to -version.
var errVersion = errors.New("-version")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	load, idle, hold, asJSON, err := parseArgs(args, stderr)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, "smtpload", version())
		fmt.Fprintln(stdout, "record formats: none (smtpload speaks SMTP only)")
		return nil
	}
	if err != nil {
		return err
	}
	if idle.conns > 0 {
		res, err := runIdle(ctx, idle, stderr)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(stdout).Encode(res)
		}
		printIdle(stdout, res)
		return nil
	}
	var holding *holdRun
	if hold.n > 0 {
		if holding, err = startHold(ctx, hold, stderr); err != nil {
			return err
		}
	}
	res, err := runLoad(ctx, load, stderr)
	if holding != nil {
		hr := holding.stopHold()
		res.Hold = &hr
	}
	if err != nil && res.Attempted == 0 {
		return err
	}
	// Interrupted: report what was measured, then the interruption.
	if asJSON {
		if jerr := json.NewEncoder(stdout).Encode(res); jerr != nil {
			return jerr
		}
	} else {
		printLoad(stdout, res)
	}
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func printLoad(w io.Writer, r loadResult) {
	fmt.Fprintf(w, "server     %s (%d sessions, %d-byte messages, pipelining %v)\n", r.Server, r.Sessions, r.Size, r.Pipelined)
	fmt.Fprintf(w, "messages   %d accepted of %d sent (%d requested) in %.2fs, %d connections\n",
		r.Accepted, r.Attempted, r.Requested, r.Elapsed.Seconds(), r.Connects)
	if r.TimedOut {
		fmt.Fprintf(w, "           stopped by -duration before all were sent\n")
	}
	fmt.Fprintf(w, "rate       %.1f msgs/s, %.2f MiB/s\n", r.Rate, r.MiBps)
	l := r.Latency
	fmt.Fprintf(w, "latency    end of DATA to 250: p50 %s  p90 %s  p99 %s  max %s  (min %s, mean %s)\n",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Min), ms(l.Mean))
	if c := r.Connection; c != nil {
		fmt.Fprintf(w, "connection connect to 221: p50 %s  p90 %s  p99 %s  max %s  (min %s, mean %s, %d connections)\n",
			ms(c.P50), ms(c.P90), ms(c.P99), ms(c.Max), ms(c.Min), ms(c.Mean), c.N)
	}
	if t := r.TLS; t != nil {
		fmt.Fprintf(w, "tls        %d handshakes: %d full, %d resumed;", t.Handshakes, t.Full, t.Resumed)
		for _, k := range sortedKeys(t.Versions) {
			fmt.Fprintf(w, " %s: %d;", k, t.Versions[k])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "replies   ")
	for _, k := range sortedKeys(r.Codes) {
		fmt.Fprintf(w, " %s: %d;", k, r.Codes[k])
	}
	fmt.Fprintln(w)
	if h := r.Hold; h != nil {
		fmt.Fprintf(w, "hold       %d %s sessions of %d opened, %d still open at the end;", h.Opened, h.Kind, h.Requested, h.StillOpen)
		for _, k := range sortedKeys(h.Codes) {
			fmt.Fprintf(w, " %s: %d;", k, h.Codes[k])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "cpu        smtpload itself: %.2f s\n", r.SelfCPU)
	for _, c := range r.CPU {
		fmt.Fprintf(w, "cpu        %s: %.2f s, %.2f s per 10k messages", c.Sel, c.Seconds, c.Per10k)
		if c.Missing {
			fmt.Fprintf(w, " (gone at the end)")
		}
		if len(c.ByName) > 1 {
			fmt.Fprintf(w, " (")
			for _, k := range sortedKeys(c.ByName) {
				fmt.Fprintf(w, " %s %.2f", k, c.ByName[k])
			}
			fmt.Fprintf(w, " )")
		}
		fmt.Fprintln(w)
	}
}

func printIdle(w io.Writer, r idleResult) {
	fmt.Fprintf(w, "server     %s\n", r.Server)
	fmt.Fprintf(w, "idle       %d of %d sessions open past EHLO (RLIMIT_NOFILE %d)\n", r.Opened, r.Requested, r.NoFileLimit)
	fmt.Fprintf(w, "rss        %d KiB before, %d KiB after: %.1f KiB per connection\n", r.RSSBefore, r.RSSAfter, r.PerConnKiB)
	if len(r.Codes) > 0 {
		fmt.Fprintf(w, "failures  ")
		for _, k := range sortedKeys(r.Codes) {
			fmt.Fprintf(w, " %s: %d;", k, r.Codes[k])
		}
		fmt.Fprintln(w)
	}
}
