package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/queue"
	"mxq/queue/queuetest"
)

var servingRE = regexp.MustCompile(`serving metrics on (http://\S+/metrics)`)

// startExporter runs mxq exporter on a free port until the test ends and
// returns its metrics URL.
func startExporter(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr servertest.Log
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-redis", url, "exporter", "-listen", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mxq exporter: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if m := servingRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("mxq exporter stopped: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("mxq exporter does not say where it serves:\n%s", stderr.String())
	return ""
}

// scrape returns every sample of one scrape, keyed by name and labels as
// the text format writes them: `mxq_host_up{host="mx1"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// mxq exporter serves the queue's counts (a held message apart from the
// depth and from its host's unconsumed), each MX host and the Redis
// memory; a drained host and a gone one are told apart.
func TestExporter(t *testing.T) {
	url, q := startQueue(t)
	ctx := context.Background()
	arrived := time.Now().Add(-10 * time.Minute)
	for i := range 3 {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "a@example.com", Arrived: arrived,
			Rcpts: []queue.Recipient{{Addr: "l@lists.example.org"}}}
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))}); err != nil {
			t.Fatal(err)
		}
	}
	held := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "a@example.com", Arrived: arrived,
		Rcpts: []queue.Recipient{{Addr: "l@lists.example.org"}}}
	if _, err := q.Enqueue(ctx, &queue.Message{Record: held, Data: []byte("Subject: held\r\n\r\nx\r\n"), HoldReason: "milter: spam"}); err != nil {
		t.Fatal(err)
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.RetryMin, copt.RetryMax = 10*time.Millisecond, time.Hour, time.Hour
	c := q.Consumer(copt)
	ds, err := c.Fetch(ctx, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch: %d, %v", len(ds), err)
	}
	if err := ds[0].Dead(ctx, "no such list"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"mx1.example.org", "mx2.example.org"} {
		if _, err := q.Beat(ctx, queue.Heartbeat{Host: h, Sessions: 2}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.SetDraining(ctx, "mx2.example.org", true); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, startExporter(t, url))
	want := map[string]float64{
		"mxq_queue_up":                                1,
		"mxq_queue_depth":                             2,
		"mxq_queue_pending":                           0,
		"mxq_queue_retrying":                          0,
		"mxq_queue_dead":                              1,
		"mxq_queue_held":                              1,
		"mxq_consumers_alive":                         1,
		`mxq_host_up{host="mx1.example.org"}`:         1,
		`mxq_host_sessions{host="mx1.example.org"}`:   2,
		`mxq_host_unconsumed{host="mx1.example.org"}`: 2,
		`mxq_host_draining{host="mx1.example.org"}`:   0,
		`mxq_host_draining{host="mx2.example.org"}`:   1,
		`mxq_host_unconsumed{host="mx2.example.org"}`: 0,
		"mxq_redis_replicas":                          0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if age := m["mxq_queue_oldest_age_seconds"]; age < 600 || age > 700 {
		t.Errorf("mxq_queue_oldest_age_seconds = %v, want about 600", age)
	}
	if age := m[`mxq_host_heartbeat_age_seconds{host="mx1.example.org"}`]; age < 0 || age > 60 {
		t.Errorf("heartbeat age = %v, want a few seconds", age)
	}
	if d := m[`mxq_host_draining_seconds{host="mx2.example.org"}`]; d < 0 || d > 60 {
		t.Errorf("draining for %v s, want a few seconds", d)
	}
	if m["mxq_redis_cpu_seconds_total"] <= 0 {
		t.Errorf("mxq_redis_cpu_seconds_total = %v, want > 0", m["mxq_redis_cpu_seconds_total"])
	}
	if m["mxq_redis_memory_used_bytes"] <= 0 {
		t.Errorf("mxq_redis_memory_used_bytes = %v, want > 0", m["mxq_redis_memory_used_bytes"])
	}
	found := false
	for k := range m {
		found = found || strings.HasPrefix(k, "mxq_redis_primary{") && strings.Contains(k, `role="master"`)
	}
	if !found {
		t.Errorf("no mxq_redis_primary with role master in %v", m)
	}
}

// With Redis down a scrape still answers, quickly, with mxq_queue_up 0
// and no stale numbers, and /healthz says the queue is unavailable; once
// Redis is back the next scrape has the state again.
func TestExporterRedisDown(t *testing.T) {
	r := queuetest.StartRedis(t)
	base := startExporter(t, r.URL())
	health := strings.TrimSuffix(base, "/metrics") + "/healthz"
	if m := scrape(t, base); m["mxq_queue_up"] != 1 {
		t.Fatalf("mxq_queue_up = %v with Redis up, want 1", m["mxq_queue_up"])
	}
	r.Stop()
	m := scrape(t, base)
	if up, ok := m["mxq_queue_up"]; !ok || up != 0 {
		t.Errorf("mxq_queue_up = %v (present %v) with Redis down, want 0", up, ok)
	}
	if _, ok := m["mxq_queue_depth"]; ok {
		t.Error("mxq_queue_depth reported with Redis down")
	}
	resp, err := http.Get(health)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz with Redis down: %s, want 503", resp.Status)
	}
	r.Restart()
	if m := scrape(t, base); m["mxq_queue_up"] != 1 {
		t.Errorf("mxq_queue_up = %v after Redis came back, want 1", m["mxq_queue_up"])
	}
}
