package redisha_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/redisha"
)

// A switch-over moves the primary to a replica. A write sent to the old
// primary while writes are held is not carried out there (it would be
// lost when the old primary becomes a replica): it is refused, and the
// old primary follows the new one before writes resume.
func TestSwitchover(t *testing.T) {
	set := queuetest.StartSet(t, 2)
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q, err := queue.Open(set.URL(), qopt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	old := set.Primary()
	oldc := redis.NewClient(&redis.Options{Addr: old.Addr(), MaxRetries: -1})
	t.Cleanup(func() { oldc.Close() })
	if err := oldc.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		steps []string
		held  = make(chan error, 1)
	)
	rep, err := q.Redis().Switchover(ctx, redisha.SwitchoverOptions{Progress: func(s redisha.SwitchoverStep) {
		t.Logf("%s %-8s %s", s.Time.Format("15:04:05.000"), s.Step, s.Msg)
		mu.Lock()
		defer mu.Unlock()
		if len(steps) == 0 || steps[len(steps)-1] != s.Step {
			steps = append(steps, s.Step)
		}
		if s.Step == "pause" {
			go func() { held <- oldc.Set(ctx, "held", "1", 0).Err() }()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writes held %v, switch-over %v", rep.Paused.Round(time.Millisecond), rep.Took.Round(time.Millisecond))
	want := []string{"find", "pause", "sync", "failover", "promoted", "demote", "unpause", "agree", "done"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if rep.From != old.Addr() || rep.To == old.Addr() || rep.To == "" {
		t.Errorf("switch-over from %s to %s; the primary was %s", rep.From, rep.To, old.Addr())
	}
	if p := set.Primary(); p.Addr() != rep.To {
		t.Errorf("sentinels name %s, the report %s", p.Addr(), rep.To)
	}
	if err := <-held; err == nil {
		t.Error("a write held on the old primary was carried out there after the switch-over")
	} else if c := queue.Cause(err); c != queue.CauseReadOnly && c != queue.CauseConnection {
		t.Errorf("the held write failed with %v (cause %s), want READONLY or a closed connection", err, c)
	} else {
		t.Logf("the held write: %v", err)
	}
	newc := redis.NewClient(&redis.Options{Addr: rep.To})
	t.Cleanup(func() { newc.Close() })
	info, err := oldc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+rep.To[strings.LastIndex(rep.To, ":")+1:]) {
		t.Errorf("old primary after the switch-over:\n%s", info)
	}
	if n, err := newc.Exists(ctx, "before", "held").Result(); err != nil || n != 1 {
		t.Errorf("new primary has %d of the keys before (written) and held (refused), %v; want 1", n, err)
	}
	// The queue writes through the new primary.
	msg := &queue.Message{Record: &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org",
		From: "alice@example.com", Rcpts: []queue.Recipient{{Addr: "~bob/list@lists.example.org"}}},
		Data: []byte("Subject: after\r\n\r\nafter\r\n")}
	if _, err := q.Enqueue(ctx, msg); err != nil {
		t.Errorf("enqueue after the switch-over: %v", err)
	}
}

// A switch-over is refused, with the fix named, when the URL is not a
// Sentinel URL; and when a replica Sentinel may promote cannot catch up
// while writes are held, it lets the writes go at once and changes
// nothing.
func TestSwitchoverRefused(t *testing.T) {
	t.Run("one server", func(t *testing.T) {
		r := queuetest.StartRedis(t)
		q, err := queue.Open(r.URL(), queue.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		_, err = q.Redis().Switchover(context.Background(), redisha.SwitchoverOptions{})
		if !errors.Is(err, redisha.ErrRefused) || !strings.Contains(err.Error(), "master_name=") {
			t.Errorf("Switchover on one server: %v, want ErrRefused naming a Sentinel URL", err)
		}
	})
	t.Run("replica behind", func(t *testing.T) {
		set := queuetest.StartSet(t, 1)
		qopt := queue.DefaultOptions()
		qopt.Timeout = time.Second
		q, err := queue.Open(set.URL(), qopt)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ctx := context.Background()
		old, replica := set.Primary(), set.Servers[1]
		oldc := redis.NewClient(&redis.Options{Addr: old.Addr(), MaxRetries: -1})
		t.Cleanup(func() { oldc.Close() })
		const pause = 6 * time.Second
		var pausedAt time.Time
		held := make(chan error, 1)
		t.Cleanup(replica.Resume)
		_, err = q.Redis().Switchover(ctx, redisha.SwitchoverOptions{Pause: pause, Progress: func(s redisha.SwitchoverStep) {
			t.Logf("%s %-8s %s", s.Time.Format("15:04:05.000"), s.Step, s.Msg)
			if s.Step == "pause" {
				pausedAt = s.Time
				replica.Pause()
				go func() { held <- oldc.Set(ctx, "held", "1", 0).Err() }()
			}
		}})
		done := time.Now()
		replica.Resume()
		if !errors.Is(err, redisha.ErrRefused) || !strings.Contains(err.Error(), replica.Addr()) {
			t.Fatalf("Switchover with the replica stopped: %v, want ErrRefused naming %s", err, replica.Addr())
		}
		t.Log(err)
		// The held write goes through as soon as the switch-over gives
		// up, well before the pause would end by itself.
		select {
		case err := <-held:
			if err != nil {
				t.Errorf("held write: %v", err)
			}
		case <-time.After(time.Until(pausedAt.Add(pause - 500*time.Millisecond))):
			t.Errorf("held write still waiting %v after the refusal", time.Since(done).Round(time.Millisecond))
		}
		if p := set.Primary(); p != old {
			t.Errorf("primary is %s after a refused switch-over, want %s", p.Addr(), old.Addr())
		}
	})
}
