package main

import (
	"bufio"
	"context"
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

	"github.com/redis/go-redis/v9"

	"mxq/internal/servertest"
	"mxq/queue/queuetest"
)

// mxdProc is the mxd binary running against a real Redis.
type mxdProc struct {
	cmd  *exec.Cmd
	addr string
	logs *servertest.Log
	rdb  *redis.Client
}

// startMxd builds and starts mxd with the given extra config lines.
func startMxd(t *testing.T, r *queuetest.Redis, extra string) *mxdProc {
	t.Helper()
	dir := t.TempDir()
	bin := build(t, "mxd", ".")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.SAdd(context.Background(), "{mxq}:rcpt:static", "~*/*@lists.example.org").Err(); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "mxd.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mx1.example.org\"\nlisten = [%q]\ndomains = [\"lists.example.org\"]\nauthserv_id = \"lists.example.org\"\nredis = %q\n%s", addr, r.URL(), extra)), 0o644)
	p := &mxdProc{addr: addr, rdb: rdb}
	p.cmd, p.logs = runDaemon(t, "mxd", bin, conf)
	waitUntil(t, "mxd listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// build compiles the command name in dir (relative to this one's) and
// returns the binary.
func build(t *testing.T, name, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// runDaemon starts the daemon bin with conf, its output in the log returned;
// it is killed when the test ends, and its log shown if the test failed.
func runDaemon(t *testing.T, name, bin, conf string) (*exec.Cmd, *servertest.Log) {
	t.Helper()
	logs := new(servertest.Log)
	cmd := exec.Command(bin, "-config", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	})
	return cmd, logs
}

// status returns a field of /proc/PID/status in bytes (VmHWM, VmRSS).
func (p *mxdProc) status(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}

// resetPeak sets mxd's VmHWM to its resident size now (clear_refs 5), so
// that the next peak is that of what comes after.
func (p *mxdProc) resetPeak(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// smtpTo runs the commands of one transaction up to 354.
func smtpTo(addr string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"EHLO c.example.com\r\n", "250"}, {"MAIL FROM:<a@example.com>\r\n", "250"},
		{"RCPT TO:<~a/b@lists.example.org>\r\n", "250"}, {"DATA\r\n", "354"},
	} {
		if step.send != "" {
			if _, err := c.Write([]byte(step.send)); err != nil {
				c.Close()
				return nil, nil, err
			}
		}
		if got := readReply(br); !strings.HasPrefix(got, step.want) {
			c.Close()
			return nil, nil, fmt.Errorf("after %q: %q", step.send, got)
		}
	}
	return c, br, nil
}

func readReply(br *bufio.Reader) string {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "ERR " + err.Error()
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// textLines writes about n bytes of distinct CRLF lines to w.
func textLines(w func([]byte) error, n int) error {
	line := make([]byte, 0, 100)
	for i := 0; n > 0; i++ {
		line = fmt.Appendf(line[:0], "line %09d of a big message, padded to look like the text of a mail\r\n", i)
		if err := w(line); err != nil {
			return err
		}
		n -= len(line)
	}
	return nil
}

// kill -9 in the middle of a 16 MiB DATA: nothing is queued, and the
// spooled part is gone from Redis once its expiry passes.
func TestKilledInTheMiddleOfData(t *testing.T) {
	r := queuetest.StartRedis(t)
	p := startMxd(t, r, "data_timeout = \"3s\"\nenqueue_timeout = \"2s\"\nride_through = \"1s\"\n")
	c, _, err := smtpTo(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bw := bufio.NewWriterSize(c, 64<<10)
	bw.WriteString("Subject: killed\r\n\r\n")
	if err := textLines(func(b []byte) error { _, err := bw.Write(b); return err }, 8<<20); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	ctx := context.Background()
	waitUntil(t, "a spool in Redis", func() bool {
		keys, _ := p.rdb.Keys(ctx, "{mxq}:spool:*").Result()
		return len(keys) == 1
	})
	keys, _ := p.rdb.Keys(ctx, "{mxq}:spool:*").Result()
	ttl, _ := p.rdb.PTTL(ctx, keys[0]).Result()
	if ttl <= 0 || ttl > 6*time.Second {
		t.Errorf("spool expiry %v, want data_timeout+enqueue_timeout+ride_through (6s) at most", ttl)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	waitUntil(t, "the spool to expire", func() bool {
		n, _ := p.rdb.Exists(ctx, keys[0]).Result()
		return n == 0
	})
	if n, _ := p.rdb.XLen(ctx, "{mxq}:stream").Result(); n != 0 {
		t.Errorf("stream has %d entries, want none", n)
	}
	if keys, _ := p.rdb.Keys(ctx, "{mxq}:body:*").Result(); len(keys) != 0 {
		t.Errorf("bodies: %v", keys)
	}
}

// 64 sessions send 8 MiB each at once through one mxd with a 32 MiB
// budget: every message is queued, and mxd's peak memory grows by no
// more than the budget, not with the 512 MiB in flight.
func TestMemoryStaysWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("512 MiB through mxd and Redis, most of a minute; run make test")
	}
	const (
		sessions = 64
		size     = 8 << 20
		budget   = 32 << 20
	)
	r := queuetest.StartRedis(t, queuetest.MaxMemory("2gb"))
	p := startMxd(t, r, fmt.Sprintf("memory_budget = %d\nmax_connections_per_ip = 100\n", budget))
	// A first message, so that the baseline includes what every run needs.
	if got := sendOne(p.addr, 1000); !strings.HasPrefix(got, "250") {
		t.Fatalf("first message: %q", got)
	}
	base := p.status(t, "VmHWM")
	var wg sync.WaitGroup
	replies := make([]string, sessions)
	for i := range sessions {
		wg.Go(func() { replies[i] = sendOne(p.addr, size) })
	}
	wg.Wait()
	for i, got := range replies {
		if !strings.HasPrefix(got, "250") {
			t.Errorf("session %d: %q", i, got)
		}
	}
	if n, _ := p.rdb.XLen(context.Background(), "{mxq}:stream").Result(); n != sessions+1 {
		t.Errorf("stream has %d entries, want %d", n, sessions+1)
	}
	peak := p.status(t, "VmHWM")
	t.Logf("VmHWM %d MiB before, %d MiB after %d × %d MiB in flight (budget %d MiB)",
		base>>20, peak>>20, sessions, size>>20, budget>>20)
	if peak-base > budget {
		t.Errorf("peak memory grew by %d MiB, over the %d MiB budget", (peak-base)>>20, budget>>20)
	}
}

// sendOne sends a message of about size bytes and returns the reply.
func sendOne(addr string, size int) string {
	c, br, err := smtpTo(addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	bw := bufio.NewWriterSize(c, 64<<10)
	bw.WriteString("Subject: " + strconv.Itoa(size) + " " + strconv.FormatInt(time.Now().UnixNano(), 36) + "\r\n\r\n")
	if err := textLines(func(b []byte) error { _, err := bw.Write(b); return err }, size); err != nil {
		return err.Error()
	}
	bw.WriteString(".\r\n")
	if err := bw.Flush(); err != nil {
		return err.Error()
	}
	return readReply(br)
}
