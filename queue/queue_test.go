package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

func open(t *testing.T, url string, opt queue.Options) *queue.Queue {
	t.Helper()
	q, err := queue.Open(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func testMessage(host, body string) *queue.Message {
	return &queue.Message{
		Record: &queue.Record{
			ID:         queue.NewID(time.Now()),
			Host:       host,
			From:       "alice@example.com",
			FromParams: map[string]string{"SIZE": "123", "BODY": "8BITMIME"},
			Rcpts: []queue.Recipient{
				{Addr: "~bob/list@lists.example.org"},
				{Addr: "~bob/other@lists.example.org", Params: map[string]string{"NOTIFY": "NEVER"}},
			},
			ClientIP: "192.0.2.7",
			HELO:     "mail.example.com",
			Arrived:  time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		},
		Header: []byte("Received: from mail.example.com\r\n"),
		Data:   []byte("Subject: " + body + "\r\n\r\n" + body + "\r\n"),
	}
}

func TestEnqueueStoresEverything(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	m := testMessage("mx1.example.org", "hello")
	res, err := q.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != m.Record.ID || res.Duplicate {
		t.Fatalf("Enqueue = %+v, want id %s, not duplicate", res, m.Record.ID)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	// The MX host's header and the client's data are stored apart, the
	// header first, and joined where the body is read.
	elems, err := rdb.LRange(ctx, "{mxq}:body:"+res.ID, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{string(m.Header), string(m.Data)}, elems); diff != "" {
		t.Errorf("stored body (-want +got):\n%s", diff)
	}
	body := readAll(t, must(q.Body(ctx, res.ID)))
	if want := string(m.Header) + string(m.Data); body != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	entries, err := rdb.XRange(ctx, "{mxq}:stream", "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream = %v, %v; want one entry", entries, err)
	}
	got, err := q.Peek(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := *m.Record
	want.Size = int64(len(body))
	if diff := cmp.Diff([]queue.Record{want}, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if n, _ := q.Inflight(ctx, "mx1.example.org"); n != 1 {
		t.Errorf("inflight = %d, want 1", n)
	}
	if n, _ := q.Depth(ctx); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
}

func TestEnqueueDedup(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	first := testMessage("mx1.example.org", "same")
	second := testMessage("mx2.example.org", "same")
	second.Header = []byte("Received: from elsewhere\r\n") // each MX stamps its own
	second.Record.Rcpts[0], second.Record.Rcpts[1] = second.Record.Rcpts[1], second.Record.Rcpts[0]
	r1, err := q.Enqueue(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := q.Enqueue(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Duplicate || r2.ID != r1.ID {
		t.Errorf("second enqueue = %+v, want duplicate of %s", r2, r1.ID)
	}
	if n, _ := q.Depth(ctx); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
	if n, _ := q.Inflight(ctx, "mx2.example.org"); n != 0 {
		t.Errorf("mx2 inflight = %d, want 0", n)
	}
	other := testMessage("mx2.example.org", "different")
	if r3, err := q.Enqueue(ctx, other); err != nil || r3.Duplicate {
		t.Errorf("different body: %+v, %v; want a new entry", r3, err)
	}
}

func TestEnqueueErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("down", func(t *testing.T) {
		r := queuetest.StartRedis(t)
		qopt := queue.DefaultOptions()
		qopt.Timeout = time.Second
		q := open(t, r.URL(), qopt)
		r.Stop()
		_, err := q.Enqueue(ctx, testMessage("mx1", "x"))
		var qe *queue.Error
		if !errors.As(err, &qe) || qe.Kind != queue.Unavailable {
			t.Fatalf("err = %v, want queue.Unavailable", err)
		}
		r.Restart()
		if _, err := q.Enqueue(ctx, testMessage("mx1", "y")); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	})
	t.Run("oom", func(t *testing.T) {
		r := queuetest.StartRedis(t, queuetest.MaxMemory("2mb"))
		q := open(t, r.URL(), queue.DefaultOptions())
		big := strings.Repeat("x", 256<<10)
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = q.Enqueue(ctx, testMessage("mx1", big+string(rune('a'+i%26))+strings.Repeat("y", i)))
		}
		var qe *queue.Error
		if !errors.As(err, &qe) || qe.Kind != queue.OutOfMemory {
			t.Fatalf("err = %v, want queue.OutOfMemory", err)
		}
		// Nothing half-written: every stream entry has its body.
		assertConsistent(t, r.Addr())
	})
	t.Run("replica confirms", func(t *testing.T) {
		primary := queuetest.StartRedis(t, queuetest.Config("repl-diskless-sync-delay 0"))
		replica := queuetest.StartRedis(t, queuetest.Config("replicaof "+strings.Replace(primary.Addr(), ":", " ", 1)))
		qopt2 := queue.DefaultOptions()
		qopt2.Replicas, qopt2.ReplicaTimeout = 1, 2*time.Second
		q := open(t, primary.URL(), qopt2)
		rq := open(t, replica.URL(), queue.DefaultOptions())
		rdb := redis.NewClient(&redis.Options{Addr: replica.Addr()})
		defer rdb.Close()
		deadline := time.Now().Add(30 * time.Second)
		for info, _ := rdb.Info(ctx, "replication").Result(); !strings.Contains(info, "master_link_status:up"); info, _ = rdb.Info(ctx, "replication").Result() {
			if time.Now().After(deadline) {
				t.Fatalf("replica did not sync:\n%s", info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := q.Enqueue(ctx, testMessage("mx1", "replicated")); err != nil {
			t.Fatalf("enqueue with a replica: %v", err)
		}
		if n, _ := rq.Depth(ctx); n != 1 {
			t.Errorf("replica depth = %d, want 1 right after WAIT", n)
		}
	})
	t.Run("replicas missing", func(t *testing.T) {
		r := queuetest.StartRedis(t)
		qopt3 := queue.DefaultOptions()
		qopt3.Replicas, qopt3.ReplicaTimeout = 1, 100*time.Millisecond
		q := open(t, r.URL(), qopt3)
		_, err := q.Enqueue(ctx, testMessage("mx1", "x"))
		var qe *queue.Error
		if !errors.As(err, &qe) || qe.Kind != queue.Unavailable {
			t.Fatalf("err = %v, want queue.Unavailable", err)
		}
	})
}

// assertConsistent checks that every stream entry has a body and is
// counted in its host's inflight set, and that there are no other bodies.
func assertConsistent(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	entries, err := rdb.XRange(ctx, "{mxq}:stream", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := rdb.Keys(ctx, "{mxq}:body:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != len(entries) {
		t.Errorf("%d bodies for %d stream entries", len(bodies), len(entries))
	}
	for _, e := range entries {
		id := e.Values["id"].(string)
		if n, _ := rdb.Exists(ctx, "{mxq}:body:"+id).Result(); n != 1 {
			t.Errorf("entry %s has no body", id)
		}
	}
}

func TestEnqueueSurvivesKill9(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	res, err := q.Enqueue(ctx, testMessage("mx1", "durable"))
	if err != nil {
		t.Fatal(err)
	}
	r.Kill()
	r.Restart()
	got, err := q.Peek(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != res.ID {
		t.Fatalf("after kill -9 and restart: %+v, want %s", got, res.ID)
	}
	assertConsistent(t, r.Addr())
}

func TestHostsAndDrain(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	if err := q.SetDraining(ctx, "mx2", true); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"mx1", "mx2"} {
		d, err := q.Beat(ctx, queue.Heartbeat{Host: h, Sessions: 3, Version: "test"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if want := h == "mx2"; d != want {
			t.Errorf("Beat(%s) draining = %v, want %v", h, d, want)
		}
	}
	if _, err := q.Beat(ctx, queue.Heartbeat{Host: "gone"}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, testMessage("mx1", "a")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var st queue.Stats
	for {
		var err error
		if st, err = q.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		if !st.Hosts["gone"].Alive || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Depth != 1 || st.Hosts["mx1"].Inflight != 1 || !st.Hosts["mx2"].DrainFlag || st.Hosts["mx1"].Sessions != 3 {
		t.Errorf("stats = %+v", st)
	}
	if st.Hosts["gone"].Alive {
		t.Errorf("host with expired heartbeat still alive: %+v", st.Hosts["gone"])
	}
}

func TestRegistry(t *testing.T) {
	r := queuetest.StartRedis(t)
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	if err := q.AddRecipients(ctx, "Announce@Lists.Example.org", "~*/*@lists.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := q.PublishRoutes(ctx, []string{"u.*.*@lists.example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := q.AddRecipients(ctx, "not an address"); err == nil {
		t.Error("AddRecipients accepted a string without @")
	}
	got, err := q.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.RegistryEntry{
		{Pattern: "announce@lists.example.org", Source: "static"},
		{Pattern: "u.*.*@lists.example.org", Source: "routes"},
		{Pattern: "~*/*@lists.example.org", Source: "static"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registry (-want +got):\n%s", diff)
	}
	if err := q.PublishRoutes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Registry(ctx); len(got) != 2 {
		t.Errorf("after publishing no routes: %v", got)
	}
}
