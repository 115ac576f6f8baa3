package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// A message queued with a hold reason is stored whole (small, or spooled
// while it arrived; in either record format) but no consumer gets it
// until it is released, and then it is delivered as it was stored.
func TestHeldThenReleased(t *testing.T) {
	for _, tt := range []struct {
		name    string
		format1 bool
		spooled bool
	}{
		{"small", false, false},
		{"spooled", false, true},
		{"small format 1", true, false},
		{"spooled format 1", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newConsumeEnv(t)
			ctx := context.Background()
			if tt.format1 {
				e.q.FormatChooser(queue.DefaultFormatOptions()) // format 1 until its first refresh
			}
			rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "alice@example.com", Arrived: time.Now(),
				Rcpts: []queue.Recipient{{Addr: "list@lists.example.org"}}}
			header, data := "Received: by mx1\r\n", "Subject: held\r\n\r\n"+strings.Repeat("spam spam spam\r\n", 1+3*queue.ChunkSize/16*btoi(tt.spooled))
			m := &queue.Message{Record: rec, Header: []byte(header), Data: []byte(data), HoldReason: "milter test: phishing"}
			if tt.spooled {
				m.Spool = e.q.NewSpool(rec.ID, time.Minute)
				half := len(data) / 2
				if err := m.Spool.Append(ctx, []byte(data[:half])); err != nil {
					t.Fatal(err)
				}
				m.Data = []byte(data[half:])
			}
			if _, err := e.q.Enqueue(ctx, m); err != nil {
				t.Fatal(err)
			}
			wantType := map[bool]string{false: "list", true: "string"}[tt.format1]
			if typ, err := e.rdb.Type(ctx, "{mxq}:body:"+rec.ID).Result(); err != nil || typ != wantType {
				t.Fatalf("body stored as %q (err %v), want %s", typ, err, wantType)
			}
			copt := queue.DefaultConsumerOptions()
			copt.Block = 10 * time.Millisecond
			c := e.q.Consumer(copt)
			if ds, err := c.Fetch(ctx, 1); err != nil || len(ds) != 0 {
				t.Fatalf("a consumer got %d messages (err %v), want none while it is held", len(ds), err)
			}
			h, err := e.q.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h.Held != 1 || h.Depth != 0 {
				t.Errorf("health: held %d depth %d, want 1 and 0", h.Held, h.Depth)
			}
			held, err := e.q.HeldMessage(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if held.Reason != "milter test: phishing" || held.Record == nil || held.Record.Size != int64(len(header+data)) || held.HeldAt.IsZero() {
				t.Errorf("held %+v", held)
			}
			body, err := e.q.HeldBody(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, body); got != header+data {
				t.Errorf("held body: %d bytes, want %d", len(got), len(header+data))
			}
			if err := e.q.ReleaseHeld(ctx, rec.ID); err != nil {
				t.Fatal(err)
			}
			d := fetchOne(t, c)
			if d.ID != rec.ID {
				t.Fatalf("released %s, consumer got %s", rec.ID, d.ID)
			}
			if got := readAll(t, d.Body()); got != header+data {
				t.Errorf("released body: %d bytes, want %d", len(got), len(header+data))
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.q.HeldMessage(ctx, rec.ID); !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("held after release: %v, want ErrNotFound", err)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A purged held message is gone with its body; its dedup key stays, so
// the same message again is a duplicate and not queued.
func TestHeldPurged(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	msg := func() *queue.Message {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "spammer@example.com", Arrived: time.Now(),
			Rcpts: []queue.Recipient{{Addr: "list@lists.example.org"}}}
		return &queue.Message{Record: rec, Data: []byte("Subject: buy\r\n\r\nnow\r\n"), HoldReason: "milter test: spam"}
	}
	m := msg()
	if _, err := e.q.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := e.q.PurgeHeld(ctx, m.Record.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := e.rdb.Exists(ctx, "{mxq}:body:"+m.Record.ID).Result(); err != nil || n != 0 {
		t.Errorf("body after purge: %d (err %v)", n, err)
	}
	if err := e.q.PurgeHeld(ctx, m.Record.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("purge again: %v, want ErrNotFound", err)
	}
	res, err := e.q.Enqueue(ctx, msg())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.ID != m.Record.ID {
		t.Errorf("the same message again: %+v, want a duplicate of %s", res, m.Record.ID)
	}
}
