package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// replyCutter is a TCP proxy in front of Redis that, while cut is set,
// passes every command on but closes the client's connection instead of
// passing back the reply: the command ran, and the client cannot know.
type replyCutter struct {
	addr string
	cut  atomic.Bool
}

func newReplyCutter(t *testing.T, redisAddr string) *replyCutter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyCutter{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", redisAddr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer wg.Done(); p.back(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *replyCutter) back(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 && p.cut.Load() {
			return
		}
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// An enqueue whose reply is lost is a transient failure, and the same
// call again finds the message queued under its own id: nothing is
// queued twice, and it is not taken for a duplicate of another message.
func TestEnqueueAgainAfterLostReply(t *testing.T) {
	r := queuetest.StartRedis(t)
	p := newReplyCutter(t, r.Addr())
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q := open(t, "redis://"+p.addr+"/0", qopt)
	ctx := context.Background()
	// Loads the script, so that the cut EVALSHA is the commit itself.
	if _, err := q.Enqueue(ctx, testMessage("mx1.example.org", "first")); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{100, 3 << 20} {
		m := bigMessage("mx1.example.org", bigData(size))
		p.cut.Store(true)
		_, err := q.Enqueue(ctx, m)
		p.cut.Store(false)
		if !queue.Transient(err) {
			t.Fatalf("%d bytes, reply lost: err = %v (cause %s), want a transient error", size, err, queue.Cause(err))
		}
		res, err := q.Enqueue(ctx, m)
		if err != nil {
			t.Fatalf("%d bytes, again: %v", size, err)
		}
		if res.ID != m.Record.ID || res.Duplicate {
			t.Errorf("%d bytes, again: %+v, want its own id %s, no duplicate", size, res, m.Record.ID)
		}
	}
	if n, _ := q.Depth(ctx); n != 3 {
		t.Errorf("depth = %d, want 3: a call again queued a second copy", n)
	}
	assertConsistent(t, r.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if keys, _ := rdb.Keys(ctx, "{mxq}:spool:*").Result(); len(keys) != 0 {
		t.Errorf("spools left behind: %v", keys)
	}
}

// A spool append whose reply is lost is tried again without storing its
// chunks twice; a spool that lost chunks is refused for good. The append
// whose reply is cut landed in Redis, so the try again finds its chunks
// there already: a plain RPUSH would store them a second time.
func TestSpoolAppendAgainAfterLostReply(t *testing.T) {
	r := queuetest.StartRedis(t)
	p := newReplyCutter(t, r.Addr())
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q := open(t, "redis://"+p.addr+"/0", qopt)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	half := 1 << 19
	for _, tc := range []struct {
		name       string
		before     int // bytes appended before the append whose reply is lost
		cut, after int // that append's end, and the next append's
	}{
		{"first append", 0, 100 << 10, half},
		{"an append of one chunk", 100 << 10, 110 << 10, half},
		{"an append of several commands", 100 << 10, half, 1<<20 - 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Bodies that differ, so none is a duplicate of another.
			data := append([]byte("X-Case: "+tc.name+"\r\n"), bigData(1<<20)...)
			m := bigMessage("mx1.example.org", nil)
			sp := q.NewSpool(m.Record.ID, time.Minute)
			if tc.before > 0 {
				if err := sp.Append(ctx, data[:tc.before]); err != nil {
					t.Fatal(err)
				}
			}
			// A connection is open, so that what is cut is the
			// append itself, not the connection's handshake.
			if _, err := q.Depth(ctx); err != nil {
				t.Fatal(err)
			}
			p.cut.Store(true)
			err := sp.Append(ctx, data[tc.before:tc.cut])
			p.cut.Store(false)
			if !queue.Transient(err) {
				t.Fatalf("append, reply lost: err = %v, want a transient error", err)
			}
			if err := sp.Append(ctx, data[tc.before:tc.cut]); err != nil {
				t.Fatalf("append again: %v", err)
			}
			if err := sp.Append(ctx, data[tc.cut:tc.after]); err != nil {
				t.Fatalf("append after: %v", err)
			}
			if got := sp.Size(); got != int64(tc.after) {
				t.Errorf("spool size %d, want %d", got, tc.after)
			}
			m.Spool, m.Data = sp, data[tc.after:]
			if res, err := q.Enqueue(ctx, m); err != nil || res.Duplicate {
				t.Fatalf("Enqueue = %+v, %v", res, err)
			}
			got, err := io.ReadAll(mustBody(t, q, m.Record.ID))
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte{}, m.Header...), data...)
			if !bytes.Equal(got, want) {
				t.Errorf("body after an append again: %d bytes, want %d", len(got), len(want))
			}
		})
	}

	// A spool whose beginning is gone cannot be completed.
	data := bigData(1 << 20)
	sp2 := q.NewSpool(queue.NewID(time.Now()), time.Minute)
	if err := sp2.Append(ctx, data[:100<<10]); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "{mxq}:spool:*").Result()
	rdb.Del(ctx, keys...)
	err := sp2.Append(ctx, data[100<<10:200<<10])
	if !errors.Is(err, queue.ErrSpoolLost) || queue.Transient(err) {
		t.Errorf("append to a lost spool: %v, want ErrSpoolLost, not transient", err)
	}
	if keys, _ := rdb.Keys(ctx, "{mxq}:spool:*").Result(); len(keys) != 0 {
		t.Errorf("fragment of a lost spool left: %v", keys)
	}
}

func mustBody(t *testing.T, q *queue.Queue, id string) io.Reader {
	t.Helper()
	b, err := q.Body(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A settlement whose reply is lost is a transient failure, and the same
// call again finds the entry gone from the stream: ErrSettled (a kind of
// ErrLeaseLost), not a second acknowledgement or a second retry. A
// settlement of an entry another consumer still holds stays a plain
// ErrLeaseLost.
func TestSettleAgainAfterLostReply(t *testing.T) {
	r := queuetest.StartRedis(t)
	p := newReplyCutter(t, r.Addr())
	qopt := queue.DefaultOptions()
	qopt.Timeout = 2 * time.Second
	q := open(t, "redis://"+p.addr+"/0", qopt)
	ctx := context.Background()
	for i := range 6 {
		if _, err := q.Enqueue(ctx, testMessage("mx1.example.org", fmt.Sprint("message ", i))); err != nil {
			t.Fatal(err)
		}
	}
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Block, copt.Lease = "a", 10*time.Millisecond, time.Hour
	c := q.Consumer(copt)
	ds := fetchN(t, c, 6)
	settle := []struct {
		name string
		do   func(*queue.Delivery) error
	}{
		{"ack", func(d *queue.Delivery) error { return d.Ack(ctx) }},
		{"retry", func(d *queue.Delivery) error { _, err := d.Retry(ctx, errors.New("try later")); return err }},
		{"dead letter", func(d *queue.Delivery) error { return d.Dead(ctx, "no such list") }},
	}
	// A first settlement of each kind, not cut, loads the scripts, so
	// that what is cut is the settlement itself.
	for i, s := range settle {
		if err := s.do(ds[3+i]); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	for i, s := range settle {
		d := ds[i]
		p.cut.Store(true)
		err := s.do(d)
		p.cut.Store(false)
		if !queue.Transient(err) {
			t.Fatalf("%s, reply lost: err = %v, want a transient error", s.name, err)
		}
		err = s.do(d)
		if !errors.Is(err, queue.ErrSettled) || !errors.Is(err, queue.ErrLeaseLost) {
			t.Errorf("%s again: %v, want ErrSettled", s.name, err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if n, _ := rdb.XLen(ctx, "{mxq}:stream").Result(); n != 0 {
		t.Errorf("stream length %d, want 0", n)
	}
	if n, _ := rdb.ZCard(ctx, "{mxq}:retry").Result(); n != 2 {
		t.Errorf("retry set holds %d, want the two retried", n)
	}
	if n, _ := rdb.XLen(ctx, "{mxq}:dead").Result(); n != 2 {
		t.Errorf("dead letters %d, want the two dead-lettered, once each", n)
	}

	// Another consumer takes an entry over: a's acknowledgement is a
	// lease lost, not "settled already".
	if _, err := q.Enqueue(ctx, testMessage("mx1.example.org", "held")); err != nil {
		t.Fatal(err)
	}
	held := fetchN(t, c, 1)[0]
	if err := rdb.XClaim(ctx, &redis.XClaimArgs{Stream: "{mxq}:stream", Group: queue.DefaultConsumerOptions().Group, Consumer: "b", Messages: []string{held.StreamID}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := held.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrSettled) {
		t.Errorf("ack of an entry b holds: %v, want ErrLeaseLost alone", err)
	}
}
