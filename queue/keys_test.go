package queue_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"mxq/maintenance"
	"mxq/queue"
)

// docKeys reads the key table of docs/redis.md, the one list of the
// keys under the queue's hash tag, the queue's and the maintenance
// lease's: key pattern → Redis type (as TYPE names it).
func docKeys(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	types := map[string]string{"sorted set": "zset"}
	row := regexp.MustCompile("^\\| `(\\{mxq\\}:[^`]+)` \\| ([a-z ]+) \\|")
	out := map[string]string{}
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		line := s.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Keys"
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			typ := m[2]
			if tt, ok := types[typ]; ok {
				typ = tt
			}
			out[m[1]] = typ
		}
	}
	if len(out) == 0 {
		t.Fatal("no key table under \"## Keys\" in docs/redis.md")
	}
	return out
}

// keyPattern turns a documented key into a regexp: its upper-case parts
// (ID, HOST, HASH) stand for any one key component.
func keyPattern(key string) *regexp.Regexp {
	parts := strings.Split(key, ":")
	for i, p := range parts {
		if p == strings.ToUpper(p) && strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			parts[i] = "[^:]+"
		} else {
			parts[i] = regexp.QuoteMeta(p)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, ":") + "$")
}

// keySeen collects, across the steps of a run, the documented pattern and
// the type of every key in Redis; a key no pattern matches is kept as it
// is, so that the diff names it.
type keySeen struct {
	e        *consumeEnv
	patterns map[string]*regexp.Regexp
	got      map[string]string
}

func (s *keySeen) scan(t *testing.T, step string) {
	t.Helper()
	ctx := context.Background()
	iter := s.e.rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := s.e.rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		name := k
		for p, re := range s.patterns {
			if re.MatchString(k) {
				name = p
				break
			}
		}
		if prev, ok := s.got[name]; ok && prev != typ {
			t.Errorf("after %s: %s is a %s, before it was a %s", step, k, typ, prev)
		}
		s.got[name] = typ
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN after %s: %v", step, err)
	}
}

// TestKeyLayout runs the whole life of the queue (enqueue, spool, consume,
// retry, dead letter, mxq dead retry, a held message released, registry, heartbeats, drain flags,
// record formats, maintenance) and compares every key it finds after each step with the
// table in docs/redis.md: names and types.
func TestKeyLayout(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	want := docKeys(t)
	s := &keySeen{e: e, patterns: map[string]*regexp.Regexp{}, got: map[string]string{}}
	for k := range want {
		s.patterns[k] = keyPattern(k)
	}
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s.scan(t, name)
	}

	// A small message, and a big one whose data is spooled while it
	// arrives.
	e.put(t, "mx1", "a@lists.example.org", "b@lists.example.org")
	s.scan(t, "enqueue")
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx2", From: "bob@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "c@lists.example.org"}}}
	sp := e.q.NewSpool(rec.ID, time.Minute)
	big := []byte(strings.Repeat("x", 4*queue.ChunkSize))
	step("spool append", sp.Append(ctx, big))
	_, err := e.q.Enqueue(ctx, &queue.Message{Record: rec, Header: []byte("Received: by mx2\r\n"), Spool: sp, Data: []byte("\r\nend\r\n")})
	step("spooled enqueue", err)

	// Consume: one recipient delivered, then a retry, a due retry back
	// in the stream, a dead letter and mxq dead retry.
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.RetryMin, copt.MaxAttempts, copt.Now = 10*time.Millisecond, time.Minute, 2, clock
	c := e.q.Consumer(copt)
	d := fetchOne(t, c)
	step("delivered", d.Delivered(ctx, d.Record.Rcpts[0].Addr))
	dead, err := d.Retry(ctx, errors.New("451 4.3.0 try later"))
	step("retry", err)
	if dead {
		t.Fatal("first Retry dead-lettered")
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	for d2 := fetchOne(t, c); ; d2 = fetchOne(t, c) {
		if d2.ID == d.ID {
			d = d2
			break
		}
		step("ack", d2.Ack(ctx))
	}
	s.scan(t, "retry due")
	dead, err = d.Retry(ctx, errors.New("451 4.3.0 still later"))
	step("dead letter", err)
	if !dead {
		t.Fatal("last Retry did not dead-letter")
	}
	ds, err := e.q.DeadLetters(ctx)
	step("dead letters", err)
	if len(ds) != 1 {
		t.Fatalf("%d dead letters, want 1", len(ds))
	}
	step("mxq dead retry", e.q.RetryDead(ctx, ds[0].ID))
	step("ack after dead retry", fetchOne(t, c).Ack(ctx))

	// A message a content filter quarantined, held and then released.
	held := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "eve@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "a@lists.example.org"}}}
	_, err = e.q.Enqueue(ctx, &queue.Message{Record: held, Data: []byte("Subject: held\r\n\r\nx\r\n"), HoldReason: "milter: test"})
	step("held enqueue", err)
	step("mxq held release", e.q.ReleaseHeld(ctx, held.ID))
	step("ack after release", fetchOne(t, c).Ack(ctx))

	// The recipient registry, heartbeats and drain flags.
	step("mxq lists add", e.q.AddRecipients(ctx, "list@lists.example.org"))
	step("listd routes", e.q.PublishRoutes(ctx, []string{"other@lists.example.org"}))
	_, err = e.q.Beat(ctx, queue.Heartbeat{Host: "mx1"}, time.Minute)
	step("heartbeat", err)
	step("drain", e.q.SetDraining(ctx, "mx1", true))

	// Record formats: the pin of mxq format, and an entry in a format too
	// new for this consumer, left for another. (Consumers announce what
	// they read with every Fetch above.)
	step("mxq format pin", e.q.SetFormatPin(ctx, 1))
	err = e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream", Values: []any{"v", "3", "id", "future", "rec", "{}"}}).Err()
	step("a newer format queued", err)
	step("left for a newer consumer", fetchOne(t, c).Leave(ctx))

	// dnsctl's maintenance (package maintenance), under the queue's
	// hash tag on the queue's connection, as dnsctl keeps it.
	maint := maintenance.New(e.q.Redis(), e.q.Name())
	step("maintenance lease", maint.Acquire(ctx, "dnsctl-1", time.Minute))
	step("maintenance state", maint.Save(ctx, "dnsctl-1", []byte(`{"host":"mx1"}`)))

	if diff := cmp.Diff(want, s.got); diff != "" {
		t.Errorf("keys of a full run against docs/redis.md (-doc +run):\n%s", diff)
	}
}
