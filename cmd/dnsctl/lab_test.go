package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/maintenance"
	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/smtpd"
)

// buildDnsctl builds this command into dir, with the race detector when
// the test has it (the packages then come from the test's build cache).
func buildDnsctl(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "dnsctl")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	start := time.Now()
	// go test puts GOROOT/bin first in PATH.
	out, err := exec.Command("go", append(args, "mxq/cmd/dnsctl")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return bin
}

// lab is the zone on a BIND primary with a BIND and a Knot secondary, a
// real Redis, and the real SMTP receiver with its heartbeat on each of
// mx1-3 (127.0.0.11-13, their A records in the zone).
type lab struct {
	t         *testing.T
	bin       string
	dns       *dnstest.Servers
	q         *queue.Queue
	lease     *maintenance.Store // what the dnsctl runs keep in Redis
	stateFile string
	args      []string // flags common to every run
}

func newLab(t *testing.T, bin string) *lab {
	t.Helper()
	l := &lab{t: t, bin: bin, dns: dnstest.StartBIND(t), stateFile: filepath.Join(t.TempDir(), "state", "dnsctl.json")}
	r := queuetest.StartRedis(t)
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	l.q, l.lease = q, maintenance.New(q.Redis(), q.Name())
	port := startReceivers(t, q)
	l.args = []string{"-zone", "example.org", "-key", l.dns.Key.File, "-server", l.dns.Primary.Addr, "-ns=false",
		"-redis", r.URL(), "-smtp-port", strconv.Itoa(port), "-state", l.stateFile,
		"-margin", "100ms", "-propagation-timeout", "15s", "-idle-timeout", "30s", "-json"}
	for _, a := range l.dns.Addrs() {
		l.args = append(l.args, "-authoritative", a)
	}
	return l
}

// startReceivers runs smtpd on mx1-3, all on one port, each with the
// heartbeat that reports its sessions and applies its drain flag, and
// waits for their first beats.
func startReceivers(t *testing.T, q *queue.Queue) int {
	t.Helper()
	port, ls := listenHosts(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i, l := range ls {
		host := fmt.Sprintf("mx%d.example.org", i+1)
		cfg := smtpd.Defaults()
		cfg.Hostname, cfg.Domains, cfg.Version = host, []string{"lists.example.org"}, "test"
		srv, err := smtpd.New(cfg, smtpd.Deps{Queue: smtpd.QueueOf(q), Recipients: smtpd.NewRecipients(q, time.Second), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		ctx, cancel := context.WithCancel(context.Background())
		hb := &smtpd.Heartbeat{Server: srv, Beater: q, Interval: 50 * time.Millisecond, TTL: time.Second}
		done := make(chan struct{})
		go func() { hb.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; srv.Close() })
	}
	poll(t, "the first heartbeat of every receiver", func() bool {
		hs, err := q.Hosts(context.Background())
		alive := 0
		for _, h := range hs {
			if h.Alive {
				alive++
			}
		}
		return err == nil && alive == len(ls)
	})
	return port
}

// listenHosts listens on one port on 127.0.0.11, .12 and .13.
func listenHosts(t *testing.T) (int, []net.Listener) {
	t.Helper()
	for range 20 {
		var ls []net.Listener
		port := 0
		for i := 11; i <= 13; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
			if err != nil {
				break
			}
			port = l.Addr().(*net.TCPAddr).Port
			ls = append(ls, l)
		}
		if len(ls) == 3 {
			return port, ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatal("no common free port on 127.0.0.11-13")
	return 0, nil
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// result is one finished dnsctl process.
type result struct {
	exit   int  // -1 when killed
	killed bool // it died of our SIGKILL
	stdout string
	events []dnsctl.Event
	other  []string // stderr lines that are not progress events
}

// start runs dnsctl SUB with the lab's flags for mx2.example.org and
// passes every progress event to see; when see returns true the process
// gets SIGKILL at once. It returns when the process has ended.
func (l *lab) start(sub string, see func(dnsctl.Event) bool) result {
	l.t.Helper()
	cmd := exec.Command(l.bin, append(append([]string{sub}, l.args...), "mx2.example.org")...)
	// A race-enabled binary sleeps 1s at exit by default; a race it finds
	// still fails the test (exit 66).
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=50 "+os.Getenv("GORACE"))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Logf("%s: pid %d started at %s", sub, cmd.Process.Pid, time.Now().Format("15:04:05.000"))
	var hung atomic.Bool
	timer := time.AfterFunc(time.Minute, func() { hung.Store(true); cmd.Process.Kill() })
	var r result
	sent := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var ev dnsctl.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Time.IsZero() {
			r.other = append(r.other, sc.Text())
			l.t.Logf("%s: %s", sub, sc.Text())
			continue
		}
		r.events = append(r.events, ev)
		l.t.Logf("%s: %s [%s] %s", sub, ev.Time.Format("15:04:05.000"), ev.Phase, ev.Msg)
		if !sent && see != nil && see(ev) {
			sent = true
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	err = cmd.Wait()
	timer.Stop()
	if hung.Load() {
		l.t.Fatalf("%s did not end within a minute", sub)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		l.t.Fatalf("%s: %v", sub, err)
	}
	r.stdout = stdout.String()
	r.exit = cmd.ProcessState.ExitCode()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	r.killed = sent && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	return r
}

// run runs dnsctl SUB to its end.
func (l *lab) run(sub string) result {
	l.t.Helper()
	return l.start(sub, nil)
}

// has reports whether an event's message starts with prefix.
func (r result) has(prefix string) bool {
	return slices.ContainsFunc(r.events, func(ev dnsctl.Event) bool { return strings.HasPrefix(ev.Msg, prefix) })
}

func (r result) report(t *testing.T) dnsctl.Report {
	t.Helper()
	var rep dnsctl.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, r.stdout)
	}
	return rep
}

// state returns the persisted maintenance: the local file's copy or
// Redis's, whichever is newer (as dnsctl picks it); nil when there is none.
func (l *lab) state() *dnsctl.State {
	l.t.Helper()
	var local, remote *dnsctl.State
	if b, err := os.ReadFile(l.stateFile); err == nil {
		local = new(dnsctl.State)
		if err := json.Unmarshal(b, local); err != nil {
			l.t.Fatalf("state file: %v", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		l.t.Fatal(err)
	}
	b, err := l.lease.Load(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	if b != nil {
		remote = new(dnsctl.State)
		if err := json.Unmarshal(b, remote); err != nil {
			l.t.Fatalf("state in redis: %v", err)
		}
	}
	if local == nil || (remote != nil && remote.Seq >= local.Seq) {
		return remote
	}
	return local
}

// wire returns the apex MX RRset as each server sends it: per server, each
// record as its exchange and its uncompressed wire form, sorted.
func (l *lab) wire() map[string][]string {
	l.t.Helper()
	got := map[string][]string{}
	for _, srv := range l.dns.All() {
		q := new(dns.Msg)
		q.SetQuestion(dnstest.Zone, dns.TypeMX)
		q.RecursionDesired = false
		c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(q, srv.Addr)
		if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			l.t.Fatalf("%s: MX query: %v %v", srv.Name, err, r)
		}
		var rrs []string
		for _, rr := range r.Answer {
			mx, ok := rr.(*dns.MX)
			if !ok {
				continue
			}
			b := make([]byte, dns.Len(rr))
			n, err := dns.PackRR(rr, b, 0, nil, false)
			if err != nil {
				l.t.Fatalf("%s: pack %s: %v", srv.Name, rr, err)
			}
			rrs = append(rrs, fmt.Sprintf("%s %x", mx.Mx, b[:n]))
		}
		slices.Sort(rrs)
		got[srv.Name] = rrs
	}
	return got
}

// settled checks that nothing of a maintenance is left: no state in Redis
// or on disk, no lease, no drain flag.
func (l *lab) settled() {
	l.t.Helper()
	ctx := context.Background()
	if st := l.state(); st != nil {
		l.t.Errorf("maintenance state left: %+v", st)
	}
	if le, err := l.lease.Current(ctx); le.Owner != "" || err != nil {
		l.t.Errorf("lease left: %+v %v", le, err)
	}
	hs, err := l.q.Hosts(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, h := range hs {
		if on, err := l.q.Draining(ctx, h.Host); on || err != nil {
			l.t.Errorf("drain flag of %s left set (%v)", h.Host, err)
		}
	}
}
