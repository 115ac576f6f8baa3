// Package queuetest starts a real redis-server for tests: on a free
// loopback port, in a temporary directory, with the settings the queue
// needs (AOF on, appendfsync always, noeviction), stopped when the test
// ends.
package queuetest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
)

// Redis is a redis-server run by a test.
type Redis struct {
	t    testing.TB
	dir  string
	port int
	conf string
	// sentinel: the server runs as a Redis Sentinel.
	sentinel bool

	mu  sync.Mutex
	cmd *exec.Cmd
	log *servertest.Log
}

// Option changes the server's configuration.
type Option func(*[]string)

// MaxMemory sets maxmemory (e.g. "2mb").
func MaxMemory(size string) Option {
	return func(c *[]string) { *c = append(*c, "maxmemory "+size) }
}

// Config adds a raw configuration line.
func Config(line string) Option {
	return func(c *[]string) { *c = append(*c, line) }
}

// StartRedis starts a redis-server and stops it when the test ends. A
// machine without redis-server fails the test with the command that
// installs it.
func StartRedis(t testing.TB, opts ...Option) *Redis {
	t.Helper()
	return startServer(t, false, func(port int, dir string) []string {
		lines := []string{
			"bind 127.0.0.1",
			"port " + strconv.Itoa(port),
			"dir " + dir,
			"save \"\"",
			"appendonly yes",
			"appendfsync always",
			"maxmemory-policy noeviction",
			"protected-mode yes",
			"daemonize no",
			"loglevel notice",
		}
		for _, o := range opts {
			o(&lines)
		}
		return lines
	})
}

// startServer starts a redis-server (a sentinel when sentinel is set)
// with the configuration conf gives for a free port and a fresh
// directory.
func startServer(t testing.TB, sentinel bool, conf func(port int, dir string) []string) *Redis {
	t.Helper()
	bin := servertest.LookPath(t, "redis-server", "install it with `apt-get install redis-server` (or run `make test`, which does)")
	dir := t.TempDir()
	r := &Redis{t: t, dir: dir, sentinel: sentinel}
	for attempt := 0; ; attempt++ {
		r.port = servertest.FreePort(t)
		r.conf = filepath.Join(dir, "redis.conf")
		lines := conf(r.port, dir)
		if err := os.WriteFile(r.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := r.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("start redis-server: %v\n%s", err, r.log)
		}
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("redis-server %s log:\n%s", r.Addr(), r.Log())
		}
	})
	return r
}

func (r *Redis) start(bin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = new(servertest.Log)
	args := []string{r.conf}
	if r.sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			r.cmd = nil
			return fmt.Errorf("redis-server exited at start")
		default:
		}
		if ping(r.Addr()) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("redis-server did not answer PING within 10s")
}

// ping sends PING and expects a reply that is not LOADING.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Dir is the server's data directory (its AOF is there).
func (r *Redis) Dir() string { return r.dir }

// Pid is the server's process id, 0 when it is not running.
func (r *Redis) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Log returns what the server printed.
func (r *Redis) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// Stop stops the server gracefully (SIGTERM) and waits for it.
func (r *Redis) Stop() { r.signal(syscall.SIGTERM) }

// Kill stops the server with SIGKILL, as a crash would.
func (r *Redis) Kill() { r.signal(syscall.SIGKILL) }

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	cmd.Process.Signal(syscall.SIGCONT) // a paused server must run to stop
	for i := 0; i < 500; i++ {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
}

// Pause freezes the server's process (SIGSTOP): it keeps its
// connections and answers nothing until Resume, as a server that hangs.
func (r *Redis) Pause() { r.send(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (r *Redis) Resume() { r.send(syscall.SIGCONT) }

func (r *Redis) send(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same port and data directory
// (and so the same AOF), after Stop or Kill.
func (r *Redis) Restart() {
	r.t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = r.start("redis-server"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly
	}
	r.t.Fatalf("restart redis-server: %v\n%s", err, r.Log())
}
