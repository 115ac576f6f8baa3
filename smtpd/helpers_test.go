package smtpd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
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
}

type envOpt func(*smtpd.Config)

func newEnv(t *testing.T, r *queuetest.Redis, host string, opts ...envOpt) *env {
	t.Helper()
	if r == nil {
		r = queuetest.StartRedis(t)
	}
	q, err := queue.Open(r.URL(), queue.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if err := q.AddRecipients(context.Background(), "~*/*@"+domain); err != nil {
		t.Fatal(err)
	}
	cfg := smtpd.Config{Hostname: host, Domains: []string{domain}, Version: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	logs := new(servertest.Log)
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := smtpd.New(cfg, q, smtpd.NewRecipients(q, 50*time.Millisecond), logger, nil)
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
	return &env{t: t, redis: r, q: q, srv: srv, addr: l.Addr().String(), logs: logs}
}

// client is a raw SMTP client that shows every reply as the server sent it.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) (*client, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	return cl, cl.read()
}

// read returns one reply, all lines joined by "\n"; "" at EOF.
func (c *client) read() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			if err == io.EOF || len(lines) > 0 {
				return strings.Join(lines, "\n")
			}
			return "ERR " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// cmd sends one command line and returns the reply.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.read()
}

func (c *client) expect(line, prefix string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%q: got %q, want %q…", line, got, prefix)
	}
	return got
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
	c.expect("EHLO client.example.com", "250")
	c.expect("MAIL FROM:<alice@example.com>", "250")
	c.expect("RCPT TO:<"+listAddr+">", "250")
	c.expect("DATA", "354")
	return c
}

// sendMail runs one transaction and returns the final reply.
func (c *client) sendMail(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.expect("MAIL FROM:<"+from+">", "250")
	for _, r := range rcpts {
		c.expect("RCPT TO:<"+r+">", "250")
	}
	c.expect("DATA", "354")
	c.send(body + ".\r\n")
	return c.read()
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
