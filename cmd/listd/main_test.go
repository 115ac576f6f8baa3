package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/internal/servertest"
	"mxq/lists/liststest"
	"mxq/queue"
	"mxq/queue/queuetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is this command compiled once for every test of the run.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildListd compiles this command with -race into a temporary
// directory, the first time it is called, and returns the binary.
func buildListd(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "listd-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "listd")
		if out, err := exec.Command("go", "build", "-race", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// proc is a listd run as a subprocess.
type proc struct {
	cmd    *exec.Cmd
	out    *servertest.Log
	exited chan struct{}
}

func startListd(t *testing.T, bin, conf string) *proc {
	t.Helper()
	p := &proc{out: &servertest.Log{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", conf)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		t.Logf("listd (pid %d) output:\n%s", p.cmd.Process.Pid, p.out.String())
	})
	p.waitLog(t, "msg=started")
	return p
}

var servingMetrics = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// metricsAddr waits for listd to log where it serves /metrics, and
// returns that host:port.
func (p *proc) metricsAddr(t *testing.T) string {
	t.Helper()
	m := servingMetrics.FindStringSubmatch(p.waitLog(t, "serving metrics"))
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", p.out.String())
	}
	return m[1]
}

// waitLog polls the output for substr.
func (p *proc) waitLog(t *testing.T, substr string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s := p.out.String(); strings.Contains(s, substr) {
			return s
		}
		select {
		case <-p.exited:
			t.Fatalf("listd exited waiting for %q:\n%s", substr, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in listd's output within 20s:\n%s", substr, p.out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, 30*time.Second, cond)
}

// waitWithin polls cond until it holds, for at most d.
func waitWithin(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// message is a message from alice at mx1 to rcpts, with its queue id
// as Subject and in its Message-ID, and text as its body.
func message(text string, rcpts ...string) *queue.Message {
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "alice@example.com", Arrived: time.Now()}
	for _, r := range rcpts {
		rec.Rcpts = append(rec.Rcpts, queue.Recipient{Addr: r})
	}
	data := fmt.Sprintf("Subject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\n%s\r\n", rec.ID, rec.ID, text)
	return &queue.Message{Record: rec, Data: []byte(data)}
}

func enqueue(t *testing.T, q *queue.Queue, rcpts ...string) string {
	t.Helper()
	m := message("hello", rcpts...)
	if _, err := q.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m.Record.ID
}

func openQueue(t *testing.T, r *queuetest.Redis) *queue.Queue {
	t.Helper()
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// kill -9 of listd while a delivery is in flight: the next listd takes the
// message over once the lease has run out and delivers it, and the
// recipient that was done before the kill does not get it again.
func TestKill9MidDelivery(t *testing.T) {
	bin := buildListd(t)
	r := queuetest.StartRedis(t)
	q := openQueue(t, r)
	srv := liststest.StartMTA(t, true)
	inFlight := make(chan struct{}, 1)
	hold := make(chan struct{})
	var killed sync.Once
	srv.SetReply(func(rcpt string) error {
		if rcpt == "slow@lists.example.org" {
			select {
			case <-hold:
				return nil // the listd that comes after the kill
			default:
			}
			inFlight <- struct{}{}
			<-hold
			// The listd this reply was for is dead: nobody reads it.
			return &smtp.SMTPError{Code: 421, Message: "client gone"}
		}
		return nil
	})
	conf := writeConfig(t, fmt.Sprintf(`redis = %q
lease = "1s"
retry_min = "100ms"
retry_max = "1s"
[[route]]
match = "fast@lists.example.org"
lmtp = %q
[[route]]
match = "slow@lists.example.org"
lmtp = %q
`, r.URL(), srv.Addr, srv.Addr))

	first := startListd(t, bin, conf)
	id := enqueue(t, q, "fast@lists.example.org", "slow@lists.example.org")
	<-inFlight
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	killedAt := time.Now()
	killed.Do(func() { close(hold) })

	second := startListd(t, bin, conf)
	waitFor(t, "the queue to drain", func() bool {
		b, err := q.Backlog(context.Background())
		return err == nil && b.Depth() == 0
	})
	t.Logf("delivered %v after the kill (lease 1s)", time.Since(killedAt).Round(time.Millisecond))
	if f, s := srv.Count("fast@lists.example.org"), srv.Count("slow@lists.example.org"); f != 1 || s != 1 {
		t.Errorf("fast got %d copies, slow got %d; want 1 each", f, s)
	}
	out := second.waitLog(t, "queue_id="+id+" attempt=2 outcome=delivered")
	if st, _ := q.Stats(context.Background()); st.Dead != 0 || st.Pending != 0 {
		t.Errorf("stats after: %+v\n%s", st, out)
	}
}

// SIGHUP reloads the routes and republishes them; a broken file keeps the
// running ones; SIGTERM stops cleanly. Metrics are served.
func TestReloadAndStop(t *testing.T) {
	bin := buildListd(t)
	r := queuetest.StartRedis(t)
	q := openQueue(t, r)
	dirA, dirB := t.TempDir(), t.TempDir()
	head := fmt.Sprintf("redis = %q\nmetrics_listen = \"127.0.0.1:0\"\n", r.URL())
	routeA := fmt.Sprintf("[[route]]\nmatch = \"a@lists.example.org\"\nmaildir = %q\n", dirA)
	routeB := fmt.Sprintf("[[route]]\nmatch = \"~*/*@lists.example.org\"\nmaildir = %q\n", dirB)
	conf := writeConfig(t, head+routeA)
	p := startListd(t, bin, conf)
	registry := func() string {
		es, err := q.Registry(context.Background())
		if err != nil {
			return err.Error()
		}
		var s []string
		for _, e := range es {
			s = append(s, e.Pattern)
		}
		return strings.Join(s, " ")
	}
	waitFor(t, "routes published", func() bool { return registry() == "a@lists.example.org" })

	if err := os.WriteFile(conf, []byte(head+routeA+"\n"+routeB), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "new routes published", func() bool { return registry() == "a@lists.example.org ~*/*@lists.example.org" })
	enqueue(t, q, "~bob/dev@lists.example.org")
	waitFor(t, "delivery through the new route", func() bool {
		es, _ := os.ReadDir(filepath.Join(dirB, "new"))
		return len(es) == 1
	})

	if err := os.WriteFile(conf, []byte(head+routeA+"bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `unknown key \"route.bogus\"`)
	enqueue(t, q, "~bob/dev@lists.example.org")
	waitFor(t, "delivery through the kept route", func() bool {
		es, _ := os.ReadDir(filepath.Join(dirB, "new"))
		return len(es) == 2
	})

	addr := p.metricsAddr(t)
	// The copy is in new/ a moment before the acknowledgement counts it.
	wants := []string{"listd_delivered_total 2", "listd_queue_depth 0", "listd_delivery_latency_seconds_count 2", "listd_queue_oldest_age_seconds 0", "listd_dead_lettered_total 0"}
	var missing []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want+"\n") {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("metrics lack %q", missing)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("listd did not stop within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.out.String(), "msg=stopped") {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// The destination answers 5xx: the message is dead-lettered and shown by
// `mxq dead ls`; once the destination is fixed, `mxq dead retry` has it
// delivered, exactly once.
func TestDeadLetterRetryWithMxq(t *testing.T) {
	bin := buildListd(t)
	mxqBin := filepath.Join(t.TempDir(), "mxq")
	if out, err := exec.Command("go", "build", "-o", mxqBin, "../mxq").CombinedOutput(); err != nil {
		t.Fatalf("go build mxq: %v\n%s", err, out)
	}
	r := queuetest.StartRedis(t)
	q := openQueue(t, r)
	srv := liststest.StartMTA(t, true)
	srv.SetReply(func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such list"}
	})
	conf := writeConfig(t, fmt.Sprintf("redis = %q\n[[route]]\nmatch = \"*@lists.example.org\"\nlmtp = %q\n", r.URL(), srv.Addr))
	startListd(t, bin, conf)
	mxq := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(mxqBin, append([]string{"-redis", r.URL()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mxq %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	id := enqueue(t, q, "dev@lists.example.org")
	waitFor(t, "the dead letter", func() bool { return strings.Contains(mxq("dead", "ls"), id) })
	if out := mxq("dead", "show", id); !strings.Contains(out, "550") || !strings.Contains(out, "no such list") {
		t.Errorf("mxq dead show:\n%s", out)
	}
	if srv.Count("dev@lists.example.org") != 0 {
		t.Fatal("delivered despite 550")
	}
	srv.SetReply(nil)
	mxq("dead", "retry", id)
	waitFor(t, "delivery after mxq dead retry", func() bool { return srv.Count("dev@lists.example.org") == 1 })
	waitFor(t, "the queue to drain", func() bool {
		b, err := q.Backlog(context.Background())
		return err == nil && b.Depth() == 0 && b.Dead == 0
	})
	if n := srv.Count("dev@lists.example.org"); n != 1 {
		t.Errorf("%d copies delivered, want 1", n)
	}
}

// /healthz says "ok", or 503 with the same fixed words as mxd's when
// Redis cannot be reached: never Redis's own error text.
func TestHealthz(t *testing.T) {
	bin := buildListd(t)
	r := queuetest.StartRedis(t)
	conf := writeConfig(t, fmt.Sprintf("redis = %q\nmetrics_listen = \"127.0.0.1:0\"\n[[route]]\nmatch = \"a@lists.example.org\"\nmaildir = %q\n", r.URL(), t.TempDir()))
	p := startListd(t, bin, conf)
	addr := p.metricsAddr(t)
	get := func() (int, string) {
		res, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := get(); code != 200 || body != "ok" {
		t.Errorf("with Redis up: %d %q", code, body)
	}
	r.Stop()
	if code, body := get(); code != 503 || body != "queue unreachable" {
		t.Errorf("with Redis down: %d %q, want 503 \"queue unreachable\"", code, body)
	}
}
