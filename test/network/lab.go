package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lab is a set of hosts on one bridge. The test's own process is on the
// bridge too, at Lab.Gateway, so it can talk to every host.
type Lab struct {
	t   testing.TB
	Dir string
	id  string // short random id in every name, so runs never collide
	// Results is where every log of the lab is saved when the test
	// fails: test/results/TEST-TIME-ID (not in git), so that the
	// output itself shows only their tails.
	Results string
	bridge  string
	subnet  string // "10.231.N."
	Gateway string

	mu    sync.Mutex
	hosts []*Host
	procs []*Proc
}

// Host is one network namespace with one address.
type Host struct {
	lab  *Lab
	Name string
	NS   string
	IP   string
	veth string
}

// NewLab creates the bridge. It fails with the install command when the
// tools are missing or the test does not run as root; with -short it
// skips the test.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root for network namespaces and runs for minutes; run make test (or make test-network)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the network test needs root (ip netns, veth): run make test as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip not found: apt-get install iproute2")
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &Lab{
		t:      t,
		Dir:    t.TempDir(),
		id:     id,
		bridge: "mqb" + id,
		subnet: fmt.Sprintf("10.231.%d.", 1+int(b[0])%250),
	}
	l.Gateway = l.subnet + "254"
	l.Results, _ = filepath.Abs(filepath.Join("..", "results",
		fmt.Sprintf("%s-%s-%s", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().Format("20060102-150405"), id)))
	// Daemons that drop privileges (Postfix) must reach their files.
	os.Chmod(l.Dir, 0o755)
	os.Chmod(filepath.Dir(l.Dir), 0o755)
	t.Cleanup(l.cleanup)
	l.must("ip", "link", "add", l.bridge, "type", "bridge")
	l.must("ip", "addr", "add", l.Gateway+"/24", "dev", l.bridge)
	l.must("ip", "link", "set", l.bridge, "up")
	return l
}

func (l *Lab) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// AddHost creates a namespace with the next address, a loopback, and a
// resolv.conf that points at resolver (if not empty).
func (l *Lab) AddHost(name, resolver string) *Host {
	l.t.Helper()
	l.mu.Lock()
	n := len(l.hosts) + 1
	h := &Host{lab: l, Name: name, NS: "mxq-" + l.id + "-" + name, IP: fmt.Sprintf("%s%d", l.subnet, n), veth: fmt.Sprintf("mq%s%d", l.id, n)}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	l.must("ip", "netns", "add", h.NS)
	l.must("ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.veth+"p")
	l.must("ip", "link", "set", h.veth+"p", "netns", h.NS)
	l.must("ip", "link", "set", h.veth, "master", l.bridge)
	l.must("ip", "link", "set", h.veth, "up")
	l.must("ip", "netns", "exec", h.NS, "ip", "link", "set", "lo", "up")
	l.must("ip", "netns", "exec", h.NS, "ip", "link", "set", h.veth+"p", "name", "eth0")
	l.must("ip", "netns", "exec", h.NS, "ip", "addr", "add", h.IP+"/24", "dev", "eth0")
	l.must("ip", "netns", "exec", h.NS, "ip", "link", "set", "eth0", "up")
	l.must("ip", "netns", "exec", h.NS, "ip", "route", "add", "default", "via", l.Gateway)
	// ip netns exec bind-mounts /etc/netns/NS/* over /etc/*.
	etc := filepath.Join("/etc/netns", h.NS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := "options timeout:1 attempts:2\n"
	if resolver != "" {
		conf = "nameserver " + resolver + "\n" + conf
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	hosts := "127.0.0.1 localhost\n" + h.IP + " " + name + "\n"
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return h
}

// Proc is a process started in a host.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs a command inside the host, its output in a log file that is
// printed when the test fails.
func (h *Host) Start(name string, args ...string) *Proc {
	h.lab.t.Helper()
	return h.StartEnv(name, nil, args...)
}

// StartEnv is Start with extra environment variables.
func (h *Host) StartEnv(name string, env []string, args ...string) *Proc {
	h.lab.t.Helper()
	logPath := filepath.Join(h.lab.Dir, h.Name+"-"+name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		h.lab.t.Fatalf("%s on %s: %v", name, h.Name, err)
	}
	p := &Proc{Name: h.Name + "/" + name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p
}

// Run runs a command inside the host and returns its combined output.
func (h *Host) Run(args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...)
	return cmd.CombinedOutput()
}

// Signal sends sig to the process (ip netns exec execs the command, so
// the pid is the command's own).
func (p *Proc) Signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Proc) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after timeout.
func (p *Proc) Stop(timeout time.Duration) {
	if p.Exited() {
		return
	}
	p.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(timeout); !ok {
		p.Signal(syscall.SIGKILL)
		p.Wait(5 * time.Second)
	}
}

// LogText returns what the process has written so far.
func (p *Proc) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs := append([]*Proc(nil), l.procs...)
	hosts := append([]*Host(nil), l.hosts...)
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop(5 * time.Second)
	}
	if l.t.Failed() {
		l.dumpLogs()
	}
	for _, h := range hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
		exec.Command("ip", "link", "del", h.veth).Run()
		os.RemoveAll(filepath.Join("/etc/netns", h.NS))
	}
	exec.Command("ip", "link", "del", l.bridge).Run()
}

// dumpLogs saves every log of the lab in l.Results and prints the tail
// of each: the whole logs of a run are megabytes.
func (l *Lab) dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(l.Dir, "*.log"))
	files = append(files, filepath.Join(l.Dir, "postfix", "maillog"))
	saved := os.MkdirAll(l.Results, 0o755) == nil
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if saved {
			os.WriteFile(filepath.Join(l.Results, filepath.Base(f)), b, 0o644)
		}
		if len(b) > 1500 {
			b = append([]byte("…\n"), b[len(b)-1500:]...)
		}
		l.t.Logf("==> %s <==\n%s", filepath.Base(f), bytes.TrimSpace(b))
	}
	if saved {
		l.t.Logf("every log of the lab saved in %s", l.Results)
	}
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitState is waitUntil for a condition that also describes what it
// saw: a time-out says the last description.
func waitState(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LogGoRedis sends go-redis's own log lines (a client's sentinel naming a
// new primary, a pool's failed dials) from the test's clients to the
// lab's go-redis.log until the test ends, instead of the test's output.
func (l *Lab) LogGoRedis() {
	f, err := os.OpenFile(filepath.Join(l.Dir, "go-redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	redis.SetLogger(&fileLogger{f: f})
	l.t.Cleanup(func() {
		redis.SetLogger(&fileLogger{f: os.Stderr})
		f.Close()
	})
}

// fileLogger is a go-redis logger that writes to f.
type fileLogger struct {
	mu sync.Mutex
	f  *os.File
}

func (l *fileLogger) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s redis: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, v...))
}
