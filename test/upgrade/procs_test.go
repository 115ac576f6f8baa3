package upgrade

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
)

// proc is an mxd or a listd run by the test.
type proc struct {
	name    string // "mx1 (baseline)", "listd new-2"
	version string // "baseline" or "current"
	cmd     *exec.Cmd
	log     *servertest.Log
	exited  chan struct{}
	addr    string // mxd: where it listens for SMTP
	metrics string // current mxd: where it serves /metrics
	stopped time.Time
}

// start runs bin with conf and waits until ready says it is.
func start(t *testing.T, name, version, bin, conf string, ready func(*proc) bool) *proc {
	t.Helper()
	p := &proc{name: name, version: version, log: &servertest.Log{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", conf)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s (pid %d) log:\n%s", p.name, p.cmd.Process.Pid, p.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !ready(p) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited while starting:\n%s", name, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 20s:\n%s", name, p.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM:\n%s", p.name, p.log.String())
	}
	p.stopped = time.Now()
	if st := p.cmd.ProcessState; st == nil || !st.Success() {
		t.Errorf("%s exited with %v:\n%s", p.name, st, p.log.String())
	}
}

// logged reports whether the log has substr.
func (p *proc) logged(substr string) bool { return strings.Contains(p.log.String(), substr) }

// cluster is the installation under test: one Redis, the list software's
// Maildir, and the programs of both versions.
type cluster struct {
	dir      string
	redis    string // URL
	maildir  string
	resolver string // a DNS address that answers nothing: authentication checks end in temperror at once
	bins     map[string]binaries
	listdN   int
}

const rcpt = "load@lists.example.org"

// startMxd starts the mxd of version ("baseline" or "current") as host.
func (c *cluster) startMxd(t *testing.T, host, version string) *proc {
	t.Helper()
	port := servertest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`hostname = %q
listen = [%q]
domains = ["lists.example.org"]
authserv_id = "lists.example.org"
redis = %q
dns_resolver = %q
dns_timeout = "1s"
heartbeat_interval = "200ms"
shutdown_timeout = "10s"
`, host, addr, c.redis, c.resolver)
	var metrics string
	if version == "current" {
		metrics = net.JoinHostPort("127.0.0.1", strconv.Itoa(servertest.FreePort(t)))
		conf += fmt.Sprintf("reader_idle = %q\nmetrics_listen = %q\n", readerIdle.String(), metrics)
		// All the load comes from 127.0.0.1, faster than one client may
		// send by default; the baseline predates the rate limits.
		conf += "connection_rate_limit = -1\nmessage_rate_limit = -1\nrecipient_rate_limit = -1\n"
	}
	path := servertest.WriteFile(t, c.dir, fmt.Sprintf("%s-%s-%d.toml", host, version, port), conf)
	p := start(t, host+" ("+version+")", version, c.bins[version]["mxd"], path, func(p *proc) bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	p.addr, p.metrics = addr, metrics
	return p
}

// startListd starts a listd of version, delivering into the Maildir.
func (c *cluster) startListd(t *testing.T, version string) *proc {
	t.Helper()
	c.listdN++
	name := fmt.Sprintf("%s-%d", version, c.listdN)
	conf := fmt.Sprintf(`redis = %q
consumer = %q
lease = %q
retry_min = "200ms"
retry_max = "1s"
shutdown_timeout = "10s"

[[route]]
match = %q
maildir = %q
`, c.redis, name, lease.String(), rcpt, c.maildir)
	path := servertest.WriteFile(t, c.dir, "listd-"+name+".toml", conf)
	return start(t, "listd "+name, version, c.bins[version]["listd"], path, func(p *proc) bool { return p.logged("msg=started") })
}

// mxq runs the current tree's mxq against the queue.
func (c *cluster) mxq(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(c.bins["current"]["mxq"], append([]string{"-redis", c.redis}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mxq %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newCluster prepares the directories; the caller starts Redis.
func newCluster(t *testing.T, redisURL string, bins map[string]binaries) *cluster {
	dir := t.TempDir()
	c := &cluster{dir: dir, redis: redisURL, maildir: filepath.Join(dir, "maildir"), bins: bins,
		resolver: net.JoinHostPort("127.0.0.1", strconv.Itoa(servertest.FreePort(t)))}
	if err := os.MkdirAll(c.maildir, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}
