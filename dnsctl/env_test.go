package dnsctl_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/maintenance"
	"mxq/queue"
	"mxq/queue/queuetest"
)

// env is a zone on real DNS servers, a real Redis, and the zone's three MX
// hosts on 127.0.0.11-13 (their A records in dnstest.ZoneText), all on one
// SMTP port.
type env struct {
	t         *testing.T
	dns       *dnstest.Servers
	redis     *queuetest.Redis
	q         *queue.Queue
	lease     *maintenance.Store // on q's connection, as dnsctl builds it
	port      int
	stateFile string
	listeners map[string]net.Listener // by host name without dot
	mx        map[string]*fakeMX

	mu     sync.Mutex
	events []dnsctl.Event
}

var mxIPs = map[string]string{"mx1.example.org": "127.0.0.11", "mx2.example.org": "127.0.0.12", "mx3.example.org": "127.0.0.13"}

// newEnv starts everything; the hosts in fake get a fake mxd (greeting and
// heartbeat), the others only a listener for the test to serve.
func newEnv(t *testing.T, start func(testing.TB) *dnstest.Servers, fake ...string) *env {
	t.Helper()
	e := &env{t: t, dns: start(t), redis: queuetest.StartRedis(t), mx: map[string]*fakeMX{},
		stateFile: filepath.Join(t.TempDir(), "state", "dnsctl.json")}
	q, err := queue.Open(e.redis.URL(), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	e.q, e.lease = q, maintenance.New(q.Redis(), q.Name())
	e.port, e.listeners = listenMX(t)
	for _, h := range fake {
		e.mx[h] = startFakeMX(t, q, h, e.listeners[h])
	}
	for _, h := range fake {
		waitFor(t, h+"'s first heartbeat", func() bool { return e.alive(h) })
	}
	return e
}

func (e *env) alive(host string) bool {
	hs, err := e.q.Hosts(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range hs {
		if h.Host == host {
			return h.Alive
		}
	}
	return false
}

// primary returns what the primary shows.
func (e *env) primary() dnsctl.RRset {
	z := newZone(e.t, e.dns)
	v := z.Read(context.Background(), z.Primary)
	if v.Err != nil {
		e.t.Fatal(v.Err)
	}
	return v.MX
}

// listenMX listens on one port on each host's address.
func listenMX(t *testing.T) (int, map[string]net.Listener) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.11:0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := map[string]net.Listener{"mx1.example.org": first}
		ok := true
		for _, h := range []string{"mx2.example.org", "mx3.example.org"} {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", mxIPs[h], port))
			if err != nil {
				ok = false
				break
			}
			ls[h] = l
		}
		if ok {
			for _, l := range ls {
				t.Cleanup(func() { l.Close() })
			}
			return port, ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatal("no common free port on 127.0.0.11-13")
	return 0, nil
}

// maintenance returns a new Maintenance, as a new dnsctl process would
// build it.
func (e *env) maintenance() *dnsctl.Maintenance {
	m := dnsctl.Defaults()
	m.Zone, m.Fleet, m.Lease, m.StateFile = newZone(e.t, e.dns), e.q, e.lease, e.stateFile
	m.SMTPPort, m.Margin, m.Propagation = e.port, 200*time.Millisecond, 10*time.Second
	m.IdleTimeout, m.LeaseTTL, m.Poll = 30*time.Second, 3*time.Second, 50*time.Millisecond
	m.Progress = func(ev dnsctl.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
		e.t.Logf("%s [%s] %s", ev.Time.Format("15:04:05.000"), ev.Phase, ev.Msg)
	}
	return &m
}

// fakeMX greets with 220 and beats like mxd: every 50ms, reporting the
// drain flag it read in the beat before.
type fakeMX struct {
	host     string
	sessions atomic.Int64
	beating  atomic.Bool
}

func startFakeMX(t *testing.T, q *queue.Queue, host string, l net.Listener) *fakeMX {
	f := &fakeMX{host: host}
	f.beating.Store(true)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go greetAndQuit(c, host)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		draining := false
		for {
			if f.beating.Load() {
				hb := queue.Heartbeat{Host: host, Sessions: int(f.sessions.Load()), Draining: draining, Version: "fake"}
				if d, err := q.Beat(ctx, hb, time.Second); err == nil {
					draining = d
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func greetAndQuit(c net.Conn, host string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "220-%s ESMTP\r\n220 fake\r\n", host)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if strings.HasPrefix(strings.ToUpper(line), "QUIT") {
			fmt.Fprintf(c, "221 bye\r\n")
			return
		}
		fmt.Fprintf(c, "250 ok\r\n")
	}
}

// views returns what every authoritative server shows, by server.
func (e *env) views() map[string]dnsctl.RRset {
	return mxOf(e.t, newZone(e.t, e.dns).ReadAll(context.Background()))
}

// settled checks that no maintenance is left: no state anywhere, no lease,
// no drain flag.
func (e *env) settled() {
	e.t.Helper()
	ctx := context.Background()
	if b, err := e.lease.Load(ctx); b != nil || err != nil {
		e.t.Errorf("maintenance state left in redis: %s %v", b, err)
	}
	if l, err := e.lease.Current(ctx); l.Owner != "" || err != nil {
		e.t.Errorf("lease left: %+v %v", l, err)
	}
	if _, err := os.Stat(e.stateFile); !errors.Is(err, os.ErrNotExist) {
		e.t.Errorf("state file left: %v", err)
	}
	for h := range mxIPs {
		if on, _ := e.q.Draining(ctx, h); on {
			e.t.Errorf("drain flag of %s left set", h)
		}
	}
}

// saw reports whether a progress event so far contains msg.
func (e *env) saw(msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if strings.Contains(ev.Msg, msg) {
			return true
		}
	}
	return false
}
