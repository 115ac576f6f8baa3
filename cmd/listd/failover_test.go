package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/lists/liststest"
	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/redisha"
)

// failoverEnv is a primary with two replicas and three sentinels, a
// producer enqueueing through the sentinels with replicas = 1, an LMTP
// server that counts what it accepts, and listd.
type failoverEnv struct {
	set     *queuetest.Set
	q       *queue.Queue
	mta     *liststest.MTA
	listd   *proc
	metrics string // host:port of listd's /metrics
	rcpts   []string
}

func newFailoverEnv(t *testing.T, rcpts ...string) *failoverEnv {
	t.Helper()
	bin := buildListd(t)
	set := queuetest.StartSet(t, 2)
	qopt := queue.DefaultOptions()
	qopt.Timeout, qopt.Replicas, qopt.ReplicaTimeout = 2*time.Second, 1, time.Second
	q, err := queue.Open(set.URL(), qopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	mta := liststest.StartMTA(t, true)
	conf := writeConfig(t, fmt.Sprintf(`redis = %q
replicas = 1
replica_timeout = "1s"
lease = "5s"
retry_min = "100ms"
retry_max = "1s"
metrics_listen = "127.0.0.1:0"
[[route]]
match = "*@lists.example.org"
lmtp = %q
`, set.URL(), mta.Addr))
	p := startListd(t, bin, conf)
	return &failoverEnv{set: set, q: q, mta: mta, listd: p, metrics: p.metricsAddr(t), rcpts: rcpts}
}

// flow enqueues a message every few milliseconds, each tried again
// until the queue takes it (the dedup key makes that safe), as mxd's
// sessions do through a failover.
type flow struct {
	mu     sync.Mutex
	queued []string
	stop   chan struct{}
	done   chan struct{}
}

func (e *failoverEnv) startFlow(t *testing.T) *flow {
	f := &flow{stop: make(chan struct{}), done: make(chan struct{})}
	tick := time.NewTicker(5 * time.Millisecond)
	go func() {
		defer close(f.done)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			m := message(fmt.Sprintf("message %d", i), e.rcpts...)
			for {
				_, err := e.q.Enqueue(context.Background(), m)
				if err == nil {
					break
				}
				select {
				case <-f.stop:
					return
				case <-time.After(50 * time.Millisecond): // back-off before the next try
				}
			}
			f.mu.Lock()
			f.queued = append(f.queued, m.Record.ID)
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *flow) halt() []string {
	close(f.stop)
	<-f.done
	return f.ids()
}

func (f *flow) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queued...)
}

var subjectRE = regexp.MustCompile(`(?m)^Subject: (\S+)\r?$`)

// copies counts the copies the LMTP server accepted, per queue id (one
// per recipient).
func (e *failoverEnv) copies() map[string]int {
	out := make(map[string]int)
	for _, m := range e.mta.Messages() {
		if s := subjectRE.FindSubmatch(m); s != nil {
			out[string(s[1])]++
		}
	}
	return out
}

// waitDelivered waits until n more messages than now have every copy.
func (e *failoverEnv) waitDelivered(t *testing.T, f *flow, n int) {
	t.Helper()
	complete := func() int {
		c, k := e.copies(), 0
		for _, id := range f.ids() {
			if c[id] >= len(e.rcpts) {
				k++
			}
		}
		return k
	}
	want := complete() + n
	waitFor(t, fmt.Sprintf("%d messages delivered", want), func() bool { return complete() >= want })
}

// drain waits until every message of ids has every copy and nothing is
// left in the queue, and returns how many messages got a recipient more
// than once.
func (e *failoverEnv) drain(t *testing.T, ids []string) (duplicated int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, missing := e.copies(), 0
		for _, id := range ids {
			if c[id] < len(e.rcpts) {
				missing++
			}
		}
		b, err := e.q.Backlog(context.Background())
		if missing == 0 && err == nil && b.Depth() == 0 && b.Pending == 0 {
			for _, id := range ids {
				if c[id] > len(e.rcpts) {
					duplicated++
				}
			}
			return duplicated
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages not delivered within 60s; backlog %+v, %v", missing, len(ids), b, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// metric sums the samples of name on listd's /metrics.
func (e *failoverEnv) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// report logs what the failover cost listd, from its metrics and log.
func (e *failoverEnv) report(t *testing.T, messages, duplicated int) {
	t.Helper()
	out := e.listd.out.String()
	t.Logf("%d messages, each to %d recipients: %d got a recipient twice at the LMTP server; listd counted "+
		"%.0f redeliveries (acknowledged again, not delivered), %.0f entries taken back, %.0f acks and %.0f recipient marks unconfirmed; "+
		"%d fetch outages logged, %d reconnections: %v",
		messages, len(e.rcpts), duplicated,
		e.metric(t, "listd_redeliveries_total"), e.metric(t, "listd_taken_back_total"),
		e.metric(t, `listd_unconfirmed_total{write="ack"}`), e.metric(t, `listd_unconfirmed_total{write="recipient"}`),
		strings.Count(out, "fetch from the queue failed"), strings.Count(out, "queue reachable again"),
		regexp.MustCompile(`queue reachable again" after=\S+ tries=\d+`).FindAllString(out, -1))
}

// kill -9 of the primary while messages flow in and out: Sentinel
// promotes a replica, listd rides through, and every message queued
// (Enqueue returned nil) is delivered to every recipient. A recipient
// may get a message twice (a delivery in flight at the kill); how many
// did, and what listd counted, is reported.
func TestFailoverKill9Consuming(t *testing.T) {
	e := newFailoverEnv(t, "a@lists.example.org", "b@lists.example.org")
	f := e.startFlow(t)
	e.waitDelivered(t, f, 200)
	old := e.set.Primary()
	old.Kill()
	t0 := time.Now()
	e.set.WaitFailover(old, 1)
	failover := time.Since(t0)
	e.waitDelivered(t, f, 200)
	ids := f.halt()
	dup := e.drain(t, ids)
	t.Logf("failover in %v; drained %v after the kill", failover.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	e.report(t, len(ids), dup)
	// A recipient can get a message twice only when its delivery was
	// under way at the kill: at most the route's sessions (8) of them.
	if dup > 8 {
		t.Errorf("%d messages duplicated, more than the deliveries in flight", dup)
	}
	if n := strings.Count(e.listd.out.String(), "fetch from the queue failed"); n > 3 {
		t.Errorf("the outage was logged %d times: want its start, not every try", n)
	}
}

// A planned switch-over, as an operator makes it with Redis's own
// commands: writes paused on the primary, a replica caught up, SENTINEL
// FAILOVER. Nothing answered is lost, so no recipient gets a message
// twice, and every message is delivered.
func TestSwitchoverConsuming(t *testing.T) {
	e := newFailoverEnv(t, "a@lists.example.org", "b@lists.example.org", "c@lists.example.org")
	f := e.startFlow(t)
	e.waitDelivered(t, f, 200)
	rep, err := e.q.Redis().Switchover(context.Background(), redisha.SwitchoverOptions{})
	if err != nil {
		t.Fatalf("switch-over: %v", err)
	}
	paused := rep.Paused
	e.waitDelivered(t, f, 200)
	ids := f.halt()
	dup := e.drain(t, ids)
	t.Logf("writes paused for %v", paused.Round(time.Millisecond))
	e.report(t, len(ids), dup)
	if dup > 0 {
		t.Errorf("%d of %d messages got a recipient twice after a planned switch-over, want none", dup, len(ids))
	}
}
