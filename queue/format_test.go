package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
)

func TestChooseFormat(t *testing.T) {
	newLive := queue.Reader{Group: "listd", Name: "new", Announced: true, Reads: []int{1, 2}, Live: true}
	newGone := newLive
	newGone.Live, newGone.Idle = false, 5*time.Minute
	oldLive := queue.Reader{Group: "listd", Name: "old", Reads: []int{1}, Live: true}
	oldGone := oldLive
	oldGone.Live, oldGone.Idle = false, 10*time.Minute
	oldLast := oldGone
	oldLast.Idle = 2 * time.Minute
	conns := queue.Reader{Reads: []int{1}, Live: true, Connections: 2}
	future := queue.Reader{Group: "listd", Name: "future", Announced: true, Reads: []int{3}, Live: true}
	tests := []struct {
		name    string
		readers []queue.Reader
		pin     int
		want    int
		why     string
	}{
		{"no consumer", nil, 0, 2, "no consumer seen yet"},
		{"no consumer, pinned", nil, 1, 1, "no consumer seen yet"},
		{"gone consumers, the new one last", []queue.Reader{newGone, oldGone}, 0, 2, "no live consumer; as for the one seen last, 5m0s ago: every live consumer reads it"},
		{"gone consumers, the old one last", []queue.Reader{newGone, oldLast}, 0, 1, "no live consumer; as for the one seen last, 2m0s ago: listd/old cannot read 2"},
		{"new consumer", []queue.Reader{newLive}, 0, 2, "every live consumer reads it"},
		{"new and old consumer", []queue.Reader{newLive, oldLive}, 0, 1, "listd/old cannot read 2"},
		{"old consumer gone", []queue.Reader{newLive, oldGone}, 0, 2, "every live consumer reads it"},
		{"unnamed old connections", []queue.Reader{newLive, conns}, 0, 1, "2 unnamed connection(s) reading the stream cannot read 2"},
		{"pinned", []queue.Reader{newLive}, 1, 1, "pinned at 1"},
		{"pinned above", []queue.Reader{newLive}, 7, 2, "every live consumer reads it"},
		{"pinned below the oldest", []queue.Reader{newLive}, -3, 2, "every live consumer reads it"},
		{"nothing in common", []queue.Reader{future, oldLive}, 0, 1, "no format every live consumer reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := queue.ChooseFormat(tt.readers, tt.pin)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("ChooseFormat = %d (%s), want %d (%s)", got, why, tt.want, tt.why)
			}
		})
	}
}

// oldConsumer is a consumer as releases before announcements ran it: a
// connection without a name in the group, reading with XREADGROUP,
// announcing nothing.
type oldConsumer struct {
	rdb  *redis.Client
	stop context.CancelFunc
	done chan struct{}
}

// startOldConsumer reads (and acknowledges) entries as consumer name of
// group listd, blocking up to 100ms per read, until stopped.
func startOldConsumer(t *testing.T, e *consumeEnv, name string) *oldConsumer {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.r.Addr(), DisableIdentity: true})
	ctx, cancel := context.WithCancel(context.Background())
	o := &oldConsumer{rdb: rdb, stop: cancel, done: make(chan struct{})}
	if err := rdb.XGroupCreateMkStream(ctx, "{mxq}:stream", "listd", "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		t.Fatal(err)
	}
	go func() {
		defer close(o.done)
		for ctx.Err() == nil {
			res, _ := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "listd", Consumer: name,
				Streams: []string{"{mxq}:stream", ">"}, Count: 10, Block: 100 * time.Millisecond}).Result()
			for _, s := range res {
				for _, m := range s.Messages {
					rdb.XAck(ctx, "{mxq}:stream", "listd", m.ID)
				}
			}
		}
	}()
	t.Cleanup(o.close)
	return o
}

func (o *oldConsumer) close() {
	o.stop()
	<-o.done
	o.rdb.Close()
}

// waitFormat refreshes f until it chooses want, for at most 10s, and
// returns when it did.
func waitFormat(t *testing.T, f *queue.FormatChooser, want int) (queue.FormatChoice, time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := f.Refresh(context.Background())
		if err == nil && c.Version == want {
			return c, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("format %d (%s, err %v), want %d within 10s; readers %+v", c.Version, c.Why, err, want, c.Readers)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// A producer writes the newest format every live consumer reads: 1 while
// a consumer that announces nothing reads the stream (seen by its group
// idle time, and while quiet by its connection), 2 once it has been gone
// for ReaderIdle; the pin caps it.
func TestFormatFollowsReaders(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	const idle = 500 * time.Millisecond
	if got := e.q.WriteFormat(); got != queue.FormatVersion {
		t.Fatalf("a queue without a chooser writes %d, want %d", got, queue.FormatVersion)
	}
	fopt := queue.DefaultFormatOptions()
	fopt.ReaderIdle = idle
	f := e.q.FormatChooser(fopt)
	if got := e.q.WriteFormat(); got != queue.OldestFormat {
		t.Fatalf("before its first refresh a chooser writes %d, want the oldest", got)
	}
	waitFormat(t, f, 2) // no consumer yet: nobody to disappoint

	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Block, copt.Program = "new", 10*time.Millisecond, "listd test"
	c := e.q.Consumer(copt)
	keepFetching(t, c)
	var choice queue.FormatChoice
	for deadline := time.Now().Add(10 * time.Second); len(choice.Readers) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the new consumer is not seen within 10s")
		}
		choice, _ = waitFormat(t, f, 2)
	}
	if len(choice.Readers) != 1 || choice.Readers[0].Program != "listd test" || !choice.Readers[0].Announced || !choice.Readers[0].Live {
		t.Errorf("readers %+v, want the announced consumer, live", choice.Readers)
	}

	old := startOldConsumer(t, e, "old")
	choice, _ = waitFormat(t, f, 1)
	if !strings.Contains(choice.Why, "cannot read 2") {
		t.Errorf("why %q", choice.Why)
	}
	id := e.put(t, "mx1", "a@lists.example.org")
	if typ := e.rdb.Type(ctx, "{mxq}:body:"+id).Val(); typ != "string" {
		t.Errorf("body written for an old consumer is a %s, want a string (format 1)", typ)
	}
	if e.q.Written(1) != 1 || e.q.Written(2) != 0 {
		t.Errorf("written: format 1 %d, format 2 %d; want 1 and 0", e.q.Written(1), e.q.Written(2))
	}

	// Quiet: the old consumer's group idle time grows past ReaderIdle on
	// Redis 7.0, but its connection keeps reading.
	deadline := time.Now().Add(3 * idle)
	var lastSeen time.Time // the start of the last refresh that saw it
	for time.Now().Before(deadline) {
		lastSeen = time.Now()
		c, err := f.Refresh(ctx)
		if err != nil || c.Version != 1 {
			t.Fatalf("quiet old consumer: format %d (%s), err %v; want 1", c.Version, c.Why, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}

	old.close()
	gone := time.Now()
	_, at := waitFormat(t, f, 2)
	if d := at.Sub(lastSeen); d < idle {
		t.Errorf("format 2 %v after the old consumer was last seen, before ReaderIdle %v", d, idle)
	}
	t.Logf("format 2 %v after the old consumer stopped, %v after it was last seen (ReaderIdle %v)",
		at.Sub(gone).Round(time.Millisecond), at.Sub(lastSeen).Round(time.Millisecond), idle)

	if err := e.q.SetFormatPin(ctx, 1); err != nil {
		t.Fatal(err)
	}
	choice, _ = waitFormat(t, f, 1)
	if choice.Pin != 1 {
		t.Errorf("pin %d, want 1", choice.Pin)
	}
	if err := e.q.SetFormatPin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFormat(t, f, 2)
}

// keepFetching runs Fetch on c in a loop until the test ends, as a
// consumer waiting for mail does; what it fetches it holds.
func keepFetching(t *testing.T, c *queue.Consumer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			c.Fetch(ctx, 1)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Format 1 stores the body as one string, header and data joined, also
// when its data was spooled; a consumer reads it back whole.
func TestEnqueueFormat1(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	if err := e.q.SetFormatPin(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f := e.q.FormatChooser(queue.DefaultFormatOptions())
	waitFormat(t, f, 1)
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "a@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "l@lists.example.org"}}}
	sp := e.q.NewSpool(rec.ID, time.Minute)
	big := strings.Repeat("0123456789abcdef", 5*queue.ChunkSize/16+7)
	if err := sp.Append(ctx, []byte(big)); err != nil {
		t.Fatal(err)
	}
	header := "Received: by mx1\r\n"
	if _, err := e.q.Enqueue(ctx, &queue.Message{Record: rec, Header: []byte(header), Spool: sp, Data: []byte("\r\nend\r\n")}); err != nil {
		t.Fatal(err)
	}
	want := header + big + "\r\nend\r\n"
	if got := e.rdb.Get(ctx, "{mxq}:body:"+rec.ID).Val(); got != want {
		t.Errorf("stored body: %d bytes, want %d as one string", len(got), len(want))
	}
	if n := e.rdb.Exists(ctx, "{mxq}:spool:"+rec.ID).Val(); n != 0 {
		t.Error("spool left behind")
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block = 10 * time.Millisecond
	d := fetchOne(t, e.q.Consumer(copt))
	if d.Format() != 1 || d.Record.Size != int64(len(want)) {
		t.Errorf("format %d size %d, want 1 and %d", d.Format(), d.Record.Size, len(want))
	}
	if got := readAll(t, d.Body()); got != want {
		t.Errorf("body read back: %d bytes, want %d", len(got), len(want))
	}
}
