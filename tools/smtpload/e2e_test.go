package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

// sink is a go-smtp backend that keeps what it receives and refuses what
// its hooks say.
type sink struct {
	mu   sync.Mutex
	msgs []received
	// rcpt and data, when set, return the refusal for a recipient or the
	// n-th message (counting from 0).
	rcpt func(to string) error
	data func(n int) error
	n    int
	// remotes counts the sessions by the client's IP address.
	remotes map[string]int
	// cut, when it says so for a session's client address, has Data
	// read a few bytes and then close the connection.
	cut func(remote string) bool
}

type received struct {
	from  string
	rcpts []string
	body  []byte
	tls   bool // sent after STARTTLS
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remotes == nil {
		s.remotes = map[string]int{}
	}
	ip, _, _ := net.SplitHostPort(c.Conn().RemoteAddr().String())
	s.remotes[ip]++
	return &sinkSession{s: s, c: c}, nil
}

type sinkSession struct {
	s     *sink
	c     *smtp.Conn
	from  string
	rcpts []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rcpt != nil {
		if err := ss.s.rcpt(to); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	if ip, _, _ := net.SplitHostPort(ss.c.Conn().RemoteAddr().String()); ss.s.cut != nil && ss.s.cut(ip) {
		io.ReadFull(r, make([]byte, 100))
		ss.c.Conn().Close()
		return errors.New("cut")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	n := ss.s.n
	ss.s.n++
	if ss.s.data != nil {
		if err := ss.s.data(n); err != nil {
			return err
		}
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.s.msgs = append(ss.s.msgs, received{from: ss.from, rcpts: ss.rcpts, body: b, tls: isTLS})
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *sinkSession) Logout() error { return nil }

// noPipelining hides PIPELINING from EHLO replies (same length, so nothing
// else changes), to drive the lock-step path.
type noPipelining struct{ net.Listener }

func (l noPipelining) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hidePipelining{c}, nil
}

type hidePipelining struct{ net.Conn }

func (c hidePipelining) Write(b []byte) (int, error) {
	return c.Conn.Write(bytes.ReplaceAll(b, []byte("PIPELINING"), []byte("X-NOPIPELI")))
}

// startSink serves be on 127.0.0.1:0 and returns the address.
func startSink(t *testing.T, be *sink, pipelining bool) string {
	t.Helper()
	return startTLSSink(t, be, pipelining, nil)
}

// startTLSSink is startSink offering STARTTLS with tc, unless tc is nil.
func startTLSSink(t *testing.T, be *sink, pipelining bool, tc *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(be)
	srv.Domain = "sink.test"
	srv.MaxMessageBytes = 1 << 20
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.TLSConfig = tc
	var sl net.Listener = l
	if !pipelining {
		sl = noPipelining{l}
	}
	go srv.Serve(sl)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// runJSON runs the tool with -json and decodes its result into v.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"-json", "-timeout", "10s"}, args...), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", stdout.String(), err)
	}
}

func TestLoadEndToEnd(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining %v", pipelining), func(t *testing.T) {
			be := &sink{}
			addr := startSink(t, be, pipelining)
			var res loadResult
			runJSON(t, &res, "-server", addr, "-n", "300", "-c", "7", "-size", "3000",
				"-from", "load@example.org", "-to", "a@lists.example.org,b@lists.example.org",
				"-per-conn", "20", "-pid", strconv.Itoa(os.Getpid()), "-progress", "0")

			if res.Accepted != 300 || res.Attempted != 300 {
				t.Errorf("accepted %d of %d, want 300 of 300", res.Accepted, res.Attempted)
			}
			if diff := cmp.Diff(counts{"data-end 250": 300}, res.Codes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
			if res.Pipelined != pipelining {
				t.Errorf("pipelined %v, want %v", res.Pipelined, pipelining)
			}
			if res.Latency.N != 300 || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
				t.Errorf("latency summary inconsistent: %+v", res.Latency)
			}
			// 7 sessions, 20 messages each per connection: at least 15 connections.
			if res.Connects < 15 {
				t.Errorf("%d connections, want at least 15 (-per-conn 20)", res.Connects)
			}
			if len(res.CPU) != 1 || res.CPU[0].Sel != strconv.Itoa(os.Getpid()) || res.CPU[0].Seconds < 0 {
				t.Errorf("cpu = %+v, want one entry for this process", res.CPU)
			}

			be.mu.Lock()
			defer be.mu.Unlock()
			if len(be.msgs) != 300 {
				t.Fatalf("server received %d messages, want 300", len(be.msgs))
			}
			ids := map[string]bool{}
			for i, m := range be.msgs {
				if m.from != "load@example.org" || !cmp.Equal(m.rcpts, []string{"a@lists.example.org", "b@lists.example.org"}) {
					t.Errorf("message %d: envelope %q %q", i, m.from, m.rcpts)
				}
				// go-smtp removes the dot-stuffing: the size is exact.
				if len(m.body) != 3000 {
					t.Errorf("message %d: %d bytes, want 3000", i, len(m.body))
				}
				_, rest, _ := strings.Cut(string(m.body), "\r\nMessage-ID: <")
				id, _, _ := strings.Cut(rest, ">")
				if ids[id] {
					t.Errorf("message %d: Message-ID %q repeated", i, id)
				}
				ids[id] = true
			}
		})
	}
}

func TestLoadRefusals(t *testing.T) {
	be := &sink{
		rcpt: func(to string) error {
			if strings.HasPrefix(to, "unknown@") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such list"}
			}
			return nil
		},
		data: func(n int) error {
			switch {
			case n%4 == 1:
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			case n == 2:
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "closing"}
			}
			return nil
		},
	}
	addr := startSink(t, be, true)

	var res loadResult
	runJSON(t, &res, "-server", addr, "-n", "40", "-c", "1", "-size", "2048", "-progress", "0")
	// Message 2 gets 421 but go-smtp keeps the session open; the tool
	// reconnects after a 421 in any case.
	want := counts{"data-end 250": 29, "data-end 451": 10, "data-end 421": 1}
	if diff := cmp.Diff(want, res.Codes); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
	if res.Accepted != 29 || res.Latency.N != 29 {
		t.Errorf("accepted %d, latencies %d; want 29 and 29", res.Accepted, res.Latency.N)
	}
	if res.Connects != 2 {
		t.Errorf("%d connections, want 2 (one more after the 421)", res.Connects)
	}

	var res2 loadResult
	runJSON(t, &res2, "-server", addr, "-n", "5", "-c", "2", "-size", "2048", "-to", "unknown@lists.example.org", "-progress", "0")
	if diff := cmp.Diff(counts{"rcpt 550": 5}, res2.Codes); diff != "" {
		t.Errorf("unknown recipient: codes (-want +got):\n%s", diff)
	}
}

func TestLoadServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	var res loadResult
	runJSON(t, &res, "-server", addr, "-n", "3", "-c", "1", "-progress", "0")
	if res.Accepted != 0 || res.Codes["error dial"] != 3 {
		t.Errorf("accepted %d, codes %v; want 0 and 3 dial errors", res.Accepted, res.Codes)
	}
}

func TestIdle(t *testing.T) {
	be := &sink{}
	addr := startSink(t, be, true)
	var res idleResult
	runJSON(t, &res, "-server", addr, "-idle", "40", "-idle-dialers", "8", "-idle-settle", "10ms", "-pid", strconv.Itoa(os.Getpid()))
	if res.Opened != 40 || len(res.Codes) != 0 {
		t.Errorf("opened %d of 40, failures %v", res.Opened, res.Codes)
	}
	if res.RSSBefore <= 0 || res.RSSAfter <= 0 {
		t.Errorf("RSS before %d, after %d KiB; want both > 0", res.RSSBefore, res.RSSAfter)
	}
	if res.NoFileLimit < 40+256 {
		t.Errorf("RLIMIT_NOFILE %d, want at least %d", res.NoFileLimit, 40+256)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-idle", "5"}, {"extra"}, {"-pid", "-1"}} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, io.Discard, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"-server", "-to", "-n", "-c", "-size", "-pid", "-idle", "-json", "-duration", "-per-conn", "-starttls", "-tls-verify", "-tls-server-name", "-tls-resume", "-source"} {
		if !strings.Contains(help.String(), name) {
			t.Errorf("-h does not explain %s", name)
		}
	}
}

// -hold opens its sessions from the -hold-source addresses, takes each to
// DATA and its first bytes, keeps them open while the load runs, and
// counts what became of them: those the server closed, and those still
// open at the end. The load itself is unaffected by a server that keeps
// them apart. With -hold-reopen a session the server closes is opened
// again.
func TestHold(t *testing.T) {
	for _, kind := range []string{holdHeader, holdTrickle} {
		t.Run(kind, func(t *testing.T) {
			be := &sink{cut: func(ip string) bool { return ip == "127.0.0.3" }}
			addr := startSink(t, be, true)
			var res loadResult
			runJSON(t, &res, "-server", addr, "-n", "20", "-c", "2", "-size", "2000", "-progress", "0",
				"-source", "127.0.0.2", "-hold", "6", "-hold-kind", kind, "-hold-source", "127.0.0.3,127.0.0.4",
				"-hold-bytes", "5000", "-hold-rate", "100", "-hold-lead", "1500ms", "-hold-reopen=false")
			if res.Accepted != 20 {
				t.Errorf("load: %d of 20 accepted", res.Accepted)
			}
			want := &holdResult{Kind: kind, Requested: 6, Opened: 6, Codes: counts{"closed": 3}, StillOpen: 3}
			if diff := cmp.Diff(want, res.Hold); diff != "" {
				t.Errorf("hold (-want +got):\n%s", diff)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			if got := be.remotes["127.0.0.3"] + be.remotes["127.0.0.4"]; got != 6 {
				t.Errorf("%d sessions from the -hold-source addresses, want 6 (%v)", got, be.remotes)
			}
		})
	}
}

func TestHoldReopen(t *testing.T) {
	be := &sink{cut: func(ip string) bool { return ip == "127.0.0.3" }}
	addr := startSink(t, be, true)
	var res loadResult
	runJSON(t, &res, "-server", addr, "-n", "5", "-c", "1", "-size", "2000", "-progress", "0",
		"-source", "127.0.0.2", "-hold", "3", "-hold-source", "127.0.0.3", "-hold-bytes", "5000", "-hold-lead", "1s")
	h := res.Hold
	if h == nil || h.Opened <= 3 || h.Codes["closed"] < 3 || h.StillOpen > 3 {
		t.Errorf("hold %+v: want more than 3 opened, at least 3 closed, at most 3 open at the end", h)
	}
}

func TestBodyLines(t *testing.T) {
	for _, n := range []int{0, 3, 79, 80, 81, 82, 83, 160, 2048} {
		b := bodyLines(n)
		if want := max(n, 3); len(b) != want {
			t.Errorf("bodyLines(%d): %d bytes, want %d", n, len(b), want)
		}
		for _, l := range strings.SplitAfter(b, "\r\n") {
			if len(l) > 80 || l != "" && (len(l) < 3 || !strings.HasSuffix(l, "\r\n")) {
				t.Errorf("bodyLines(%d): line %q", n, l)
			}
		}
	}
}

// TestLoadRate checks that -rate spaces the starts of the messages: the
// n-th starts no earlier than n/rate seconds after the run began, so the
// run cannot end before (n-1)/rate whatever the server's speed. (Only a
// lower bound: a slow machine may take longer.)
func TestLoadRate(t *testing.T) {
	be := &sink{}
	addr := startSink(t, be, true)
	var res loadResult
	runJSON(t, &res, "-server", addr, "-n", "40", "-c", "4", "-size", "1000", "-rate", "100", "-progress", "0")
	if res.Accepted != 40 {
		t.Fatalf("accepted %d, want 40", res.Accepted)
	}
	if min := 390 * time.Millisecond; res.Elapsed < min {
		t.Errorf("40 messages at -rate 100 took %v, want at least %v", res.Elapsed, min)
	}

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-rate", "-1"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "-rate") {
		t.Errorf("-rate -1: err %v, want one naming -rate", err)
	}
}
