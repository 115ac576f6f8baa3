package queue_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// bigData is a message of about n bytes whose lines differ, so that a
// chunk out of place shows.
func bigData(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %08d of a big message, padded to look like text...\r\n", i)
	}
	return b.Bytes()
}

func bigMessage(host string, data []byte) *queue.Message {
	return &queue.Message{
		Record: &queue.Record{ID: queue.NewID(time.Now()), Host: host, From: "alice@example.com",
			Rcpts: []queue.Recipient{{Addr: "~bob/list@lists.example.org"}}, Arrived: time.Now()},
		Header: []byte("Received: from a by " + host + "\r\n"),
		Data:   data,
	}
}

// spoolAll spools data in pieces of the given size, the way a producer
// does while the message arrives.
func spoolAll(t *testing.T, sp *queue.Spool, data []byte, piece int) {
	t.Helper()
	for len(data) > 0 {
		n := min(piece, len(data))
		if err := sp.Append(context.Background(), data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}

func TestSpoolCommitsInChunks(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	data := bigData(3<<20 + 12345)
	m := bigMessage("mx1.example.org", data)
	sp := e.q.NewSpool(m.Record.ID, time.Minute)
	split := len(data) - 1000
	spoolAll(t, sp, data[:split], 100<<10)
	m.Spool, m.Data = sp, data[split:]
	res, err := e.q.Enqueue(ctx, m)
	if err != nil || res.Duplicate {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	// No element is over a chunk, the spool is gone, the body does not
	// expire.
	elems, _ := e.rdb.LRange(ctx, "{mxq}:body:"+res.ID, 0, -1).Result()
	for i, el := range elems {
		if len(el) > queue.ChunkSize {
			t.Errorf("element %d is %d bytes, over a chunk", i, len(el))
		}
	}
	if n, _ := e.rdb.Exists(ctx, "{mxq}:spool:"+res.ID).Result(); n != 0 {
		t.Error("spool key left behind")
	}
	if ttl, _ := e.rdb.PTTL(ctx, "{mxq}:body:"+res.ID).Result(); ttl != -1 {
		t.Errorf("body TTL = %v, want none", ttl)
	}
	copt := queue.DefaultConsumerOptions()
	copt.Name = "c1"
	d := fetchOne(t, e.q.Consumer(copt))
	if d.Record.Size != int64(len(m.Header)+len(data)) {
		t.Errorf("record size %d, want %d", d.Record.Size, len(m.Header)+len(data))
	}
	got := readAll(t, d.Body())
	if want := string(m.Header) + string(data); sha256.Sum256([]byte(got)) != sha256.Sum256([]byte(want)) {
		t.Errorf("body read back differs: %d bytes, want %d", len(got), len(want))
	}
}

func TestSpoolDedupAcrossHosts(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	data := bigData(8_000_000)
	var ids []string
	for _, host := range []string{"mx1.example.org", "mx2.example.org"} {
		m := bigMessage(host, nil)
		sp := e.q.NewSpool(m.Record.ID, time.Minute)
		spoolAll(t, sp, data, 256<<10)
		m.Spool = sp
		res, err := e.q.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
		if n, _ := e.rdb.Exists(ctx, "{mxq}:spool:"+m.Record.ID).Result(); n != 0 {
			t.Errorf("%s: spool key left behind", host)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("queue ids %v: the second copy should be a duplicate of the first", ids)
	}
	if n, _ := e.q.Depth(ctx); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
	// The same message given whole to Enqueue (spooled by Enqueue itself)
	// is the same message.
	res, err := e.q.Enqueue(ctx, bigMessage("mx3.example.org", data))
	if err != nil || !res.Duplicate || res.ID != ids[0] {
		t.Errorf("whole-data enqueue = %+v, %v; want a duplicate of %s", res, err, ids[0])
	}
	if keys, _ := e.rdb.Keys(ctx, "{mxq}:[bs][op]*:*").Result(); len(keys) != 1 || keys[0] != "{mxq}:body:"+ids[0] {
		t.Errorf("bodies and spools = %v, want only the first copy's body", keys)
	}
}

func TestSpoolAbortAndExpiry(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	sp := e.q.NewSpool(queue.NewID(time.Now()), time.Minute)
	spoolAll(t, sp, bigData(300<<10), 64<<10)
	if err := sp.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.rdb.Keys(ctx, "{mxq}:spool:*").Result(); len(keys) != 0 {
		t.Errorf("after Abort: %v", keys)
	}

	// A spool whose producer went away expires; an Append after that
	// fails instead of storing a body without its beginning, and so
	// does the commit.
	id := queue.NewID(time.Now())
	sp = e.q.NewSpool(id, 300*time.Millisecond)
	spoolAll(t, sp, []byte("Subject: x\r\n\r\n"), 64)
	waitGone(t, e, "{mxq}:spool:"+id)
	if err := sp.Append(ctx, []byte("more\r\n")); err == nil {
		t.Error("Append after the spool expired: no error")
	}
	m := bigMessage("mx1.example.org", []byte("end\r\n"))
	m.Record.ID = id
	sp = e.q.NewSpool(id, 300*time.Millisecond)
	spoolAll(t, sp, []byte("Subject: x\r\n\r\n"), 64)
	waitGone(t, e, "{mxq}:spool:"+id)
	m.Spool = sp
	var qe *queue.Error
	if _, err := e.q.Enqueue(ctx, m); !errors.As(err, &qe) || qe.Kind != queue.Unavailable {
		t.Errorf("Enqueue of an expired spool = %v, want an Unavailable queue error", err)
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Errorf("keys = %v, want none", keys)
	}
}

func waitGone(t *testing.T, e *consumeEnv, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := e.rdb.Exists(context.Background(), key).Result()
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not expire", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSpoolOutOfMemory(t *testing.T) {
	r := queuetest.StartRedis(t, queuetest.MaxMemory("4mb"))
	q := open(t, r.URL(), queue.DefaultOptions())
	ctx := context.Background()
	id := queue.NewID(time.Now())
	sp := q.NewSpool(id, time.Minute)
	data := bigData(16 << 20)
	var err error
	for off := 0; off < len(data) && err == nil; off += 256 << 10 {
		err = sp.Append(ctx, data[off:min(off+256<<10, len(data))])
	}
	var qe *queue.Error
	if !errors.As(err, &qe) || qe.Kind != queue.OutOfMemory {
		t.Fatalf("Append past maxmemory = %v, want an OutOfMemory queue error", err)
	}
	if err := sp.Abort(ctx); err != nil {
		t.Fatalf("Abort under OOM: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e := &consumeEnv{r: r, q: q, rdb: rdb}
	if keys := e.keys(t); len(keys) != 0 {
		t.Errorf("keys after the abort = %v, want none", keys)
	}
	if n, _ := q.Depth(ctx); n != 0 {
		t.Errorf("depth = %d", n)
	}
	// With the memory back, a small message goes in.
	if _, err := q.Enqueue(ctx, bigMessage("mx1.example.org", []byte("Subject: small\r\n\r\nhi\r\n"))); err != nil {
		t.Errorf("small message after the abort: %v", err)
	}
}

// TestReadsPreviousFormat: a record of format 1 (the body one string,
// the MX host's header and the data joined), as a previous mxd wrote it,
// is delivered by this reader, a big body in pieces.
func TestReadsPreviousFormat(t *testing.T) {
	e := newConsumeEnv(t)
	ctx := context.Background()
	for _, size := range []int{100, 600 << 10} {
		id := queue.NewID(time.Now())
		body := "Received: from a by mx0.example.org\r\n" + string(bigData(size))
		rec := fmt.Sprintf(`{"id":%q,"host":"mx0.example.org","from":"alice@example.com","rcpts":[{"addr":"~bob/list@lists.example.org"}],"client_ip":"192.0.2.1","helo":"a","arrived":"2026-11-25T10:00:00Z","size":%d}`, id, len(body))
		if err := e.rdb.Set(ctx, "{mxq}:body:"+id, body, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream", Values: []any{"v", "1", "id", id, "rec", rec}}).Err(); err != nil {
			t.Fatal(err)
		}
		copt := queue.DefaultConsumerOptions()
		copt.Name = "c1"
		d := fetchOne(t, e.q.Consumer(copt))
		if d.Err() != nil || d.ID != id {
			t.Fatalf("delivery %s: %v", d.ID, d.Err())
		}
		if got := readAll(t, d.Body()); got != body {
			t.Errorf("format 1, %d bytes: body read back differs (%d bytes)", size, len(got))
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if keys := e.keys(t); len(keys) != 0 {
			t.Errorf("after the ack: %v", keys)
		}
	}
}
