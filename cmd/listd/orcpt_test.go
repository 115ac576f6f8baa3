package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/internal/smtptest"
	"mxq/lists"
	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/smtpd"
)

// An ORCPT parameter is xtext-decoded once, from the SMTP session to the
// program of an exec destination: "+2B0A" reaches ORIGINAL_RECIPIENT as
// "+0A", "%0A" as "%0A", never as a line break or a NUL. Through the
// receiver as mxd runs it, a real Redis, and the consumer as listd runs
// it.
func TestORCPTDecodedOnce(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := openQueue(t, r)
	ctx := context.Background()
	logs := new(servertest.Log)
	logger := slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	mx := startMX(t, q, logger)

	dir := t.TempDir()
	script := filepath.Join(dir, "deliver")
	src := "#!/bin/sh\nprintf '%s' \"$ORIGINAL_RECIPIENT\" > " + dir + "/got-$RECIPIENT\ncat > /dev/null\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	results := make(chan lists.Result, 16)
	router := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Exec{Argv: []string{script}}}}}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	copt := queue.DefaultConsumerOptions()
	copt.MaxAttempts, copt.RetryMin, copt.RetryMax = 2, 10*time.Millisecond, 10*time.Millisecond
	c := lists.NewConsumer(q.Consumer(copt), router)
	c.Logger, c.Observe = logger, func(res lists.Result) { results <- res }
	go func() { c.Run(cctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	tests := []struct{ rcpt, param, want string }{
		{"a@lists.example.org", " ORCPT=rfc822;a+2B0AX-Injected:+2B20yes", "a+0AX-Injected:+20yes"},
		{"b@lists.example.org", " ORCPT=rfc822;b%0AX-Injected:%20yes", "b%0AX-Injected:%20yes"},
		{"c@lists.example.org", " ORCPT=rfc822;c+2B00d", "c+00d"},
		{"d@lists.example.org", " ORCPT=rfc822;D+2Bx@lists.example.org", "D+x@lists.example.org"},
		{"e@lists.example.org", " ORCPT=utf-8;j\\x{FC}rgen@example.org", "jürgen@example.org"},
		{"f@lists.example.org", "", "f@lists.example.org"},
	}
	cl, _ := smtptest.Dial(t, mx)
	cl.Expect("EHLO client.test", "250")
	cl.Expect("MAIL FROM:<alice@example.com>", "250")
	for _, tt := range tests {
		cl.Expect("RCPT TO:<"+tt.rcpt+">"+tt.param, "250")
	}
	cl.Expect("DATA", "354")
	cl.Send("From: alice@example.com\r\nSubject: orcpt\r\n\r\nbody\r\n.\r\n")
	if got := cl.Read(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("end of data: %q", got)
	}

	select {
	case res := <-results:
		if res.Outcome != lists.Delivered {
			t.Errorf("outcome %v (%v), want delivered", res.Outcome, res.Err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
	}
	for _, tt := range tests {
		got, err := os.ReadFile(filepath.Join(dir, "got-"+tt.rcpt))
		if err != nil {
			t.Errorf("%s: %v", tt.rcpt, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s%s: ORIGINAL_RECIPIENT=%q, want %q", tt.rcpt, tt.param, got, tt.want)
		}
	}
}

// startMX serves the receiver, as mxd runs it, in front of q for every
// address at lists.example.org, on loopback until the test ends, and
// returns its address.
func startMX(tb testing.TB, q *queue.Queue, logger *slog.Logger) string {
	tb.Helper()
	if err := q.AddRecipients(context.Background(), "*@lists.example.org"); err != nil {
		tb.Fatal(err)
	}
	// All load comes from 127.0.0.1, above the default rate limits.
	cfg := smtpd.Defaults()
	cfg.Hostname, cfg.Domains = "mx1.test", []string{"lists.example.org"}
	cfg.MessageRateLimit, cfg.RecipientRateLimit = -1, -1
	srv, err := smtpd.New(cfg, smtpd.Deps{Queue: smtpd.QueueOf(q), Recipients: smtpd.NewRecipients(q, time.Second), Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
