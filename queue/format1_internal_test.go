package queue

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A format 1 enqueue whose join was stored but whose reply was lost
// finds the joined body when called again, and still commits format 1
// when the format chosen meanwhile is 2.
func TestJoinSpoolAgain(t *testing.T) {
	q := openTest(t)
	ctx := context.Background()
	rec := &Record{ID: NewID(time.Now()), Host: "mx1", From: "a@example.com", Arrived: time.Now(), Rcpts: []Recipient{{Addr: "l@lists.example.org"}}}
	sp := q.NewSpool(rec.ID, time.Minute)
	data := strings.Repeat("abcdefgh", 3*ChunkSize/8+5)
	if err := sp.Append(ctx, []byte(data)); err != nil {
		t.Fatal(err)
	}
	header, tail := []byte("Received: by mx1\r\n"), [][]byte{[]byte("\r\nend\r\n")}
	if err := q.joinSpool(ctx, sp, header, tail); err != nil {
		t.Fatal(err)
	}
	sp.joined = false // the reply to the SET was lost
	if err := q.joinSpool(ctx, sp, header, tail); err != nil || !sp.joined {
		t.Fatalf("join again: %v, joined %v", err, sp.joined)
	}
	q.formats.write.Store(2)
	if _, err := q.Enqueue(ctx, &Message{Record: rec, Header: header, Spool: sp, Chunks: tail}); err != nil {
		t.Fatal(err)
	}
	want := string(header) + data + "\r\nend\r\n"
	if got, _ := q.rdb.Get(ctx, q.key("body", rec.ID)).Result(); got != want {
		t.Errorf("body: %d bytes, want %d", len(got), len(want))
	}
	ms, _ := q.rdb.XRange(ctx, q.key("stream"), "-", "+").Result()
	if len(ms) != 1 || entryVersion(ms[0].Values) != 1 || q.Written(1) != 1 {
		t.Errorf("entries %v, written in format 1: %d; want one entry of format 1", ms, q.Written(1))
	}
}
