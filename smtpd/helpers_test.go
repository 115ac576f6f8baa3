package smtpd_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/internal/servertest"
	"mxq/internal/smtptest"
	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/smtpd"
)

const (
	listAddr = "~alice/dev@lists.example.org"
	domain   = "lists.example.org"
)

// env is one mxd-like server on loopback with a real Redis behind it.
type env struct {
	t     *testing.T
	redis *queuetest.Redis
	q     *queue.Queue
	srv   *smtpd.Server
	addr  string
	logs  *servertest.Log
	reg   *prometheus.Registry // the server's metrics
}

// setup is what a test may change of a server before it starts: its
// settings and the live objects it is given.
type setup struct {
	smtpd.Config
	smtpd.Deps
}

type envOpt func(*setup)

func newEnv(t *testing.T, r *queuetest.Redis, host string, opts ...envOpt) *env {
	t.Helper()
	if r == nil {
		r = queuetest.StartRedis(t)
	}
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	e := serveQueue(t, openQueue(t, r.URL(), qopt), host, opts...)
	e.redis = r
	return e
}

// openQueue opens the queue at url, closed when the test ends.
func openQueue(t *testing.T, url string, opt queue.Options) *queue.Queue {
	t.Helper()
	q, err := queue.Open(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// serveQueue runs a server named host in front of q, for every address
// of the list domain, on loopback.
func serveQueue(t *testing.T, q *queue.Queue, host string, opts ...envOpt) *env {
	t.Helper()
	if err := q.AddRecipients(context.Background(), "~*/*@"+domain); err != nil {
		t.Fatal(err)
	}
	logs := new(servertest.Log)
	reg := prometheus.NewRegistry()
	s := setup{Config: smtpd.Defaults(), Deps: smtpd.Deps{Queue: smtpd.QueueOf(q), Recipients: smtpd.NewRecipients(q, 50*time.Millisecond),
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Metrics: smtpd.NewMetrics(reg)}}
	s.Hostname, s.Domains, s.Version = host, []string{domain}, "test"
	for _, o := range opts {
		o(&s)
	}
	srv, err := smtpd.New(s.Config, s.Deps)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("mxd %s log:\n%s", host, logs.String())
		}
	})
	return &env{t: t, q: q, srv: srv, addr: l.Addr().String(), logs: logs, reg: reg}
}

// client is a raw SMTP session (smtptest.Client), with the steps these
// tests repeat as methods.
type client struct {
	*smtptest.Client
	t *testing.T
}

func dial(t *testing.T, addr string) (*client, string) {
	t.Helper()
	c, greeting := smtptest.Dial(t, addr)
	return &client{c, t}, greeting
}

// message is a small valid message with a unique Message-ID.
func message(subject string) string {
	return fmt.Sprintf("From: a@example.com\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\nHello.\r\n", listAddr, subject, strings.ReplaceAll(subject, " ", "."))
}

// startData opens a session and takes it to the 354 of a transaction
// from alice@example.com to the list.
func startData(t *testing.T, addr string) *client {
	t.Helper()
	c, _ := dial(t, addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	c.Expect("RCPT TO:<"+listAddr+">", "250")
	c.Expect("DATA", "354")
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// body returns the stored body of a queued message.
func (e *env) body(id string) string {
	e.t.Helper()
	r, err := e.q.Body(context.Background(), id)
	if err != nil {
		e.t.Fatalf("body of %s: %v", id, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatalf("body of %s: %v", id, err)
	}
	return string(b)
}
