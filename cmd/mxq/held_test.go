package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// mxq held ls, show, release and purge: what a content filter
// quarantined is listed with its reason, read as stored, put into the
// queue, or deleted.
func TestHeldCommands(t *testing.T) {
	url, q := startQueue(t)
	ctx := context.Background()
	var ids []string
	for i, reason := range []string{"inet:127.0.0.1:11332: phishing", "inet:127.0.0.1:11332: spam"} {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "eve@example.com", Arrived: time.Now(),
			ClientIP: "192.0.2.7", HELO: "client.example.com", Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}}}
		data := "Subject: offer " + string(rune('a'+i)) + "\r\n\r\nbuy now\r\n"
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte(data), HoldReason: reason}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}

	out, err := mxq(t, url, "held", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "REASON", ids[0], ids[1], "phishing", "2 held messages"} {
		if !strings.Contains(out, want) {
			t.Errorf("held ls lacks %q:\n%s", want, out)
		}
	}
	out, err = mxq(t, url, "held", "ls", "-json")
	var ls []queue.HeldMessage
	if err != nil || json.Unmarshal([]byte(out), &ls) != nil || len(ls) != 2 {
		t.Fatalf("held ls -json: %v\n%s", err, out)
	}
	out, err = mxq(t, url, "held", "show", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"queue id:   " + ids[0], "reason:     inet:127.0.0.1:11332: phishing", "<dev@lists.example.org>", "from 192.0.2.7 (client.example.com)"} {
		if !strings.Contains(out, want) {
			t.Errorf("held show lacks %q:\n%s", want, out)
		}
	}
	if out, err = mxq(t, url, "held", "show", "-body", ids[0]); err != nil || out != "Subject: offer a\r\n\r\nbuy now\r\n" {
		t.Errorf("held show -body: %v\n%q", err, out)
	}
	if _, err := mxq(t, url, "held", "show", "nosuchid"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("held show of an unknown id: %v", err)
	}
	if out, err := mxq(t, url, "stats"); err != nil || !strings.Contains(out, "held 2") {
		t.Errorf("stats does not count the held messages: %v\n%s", err, out)
	}

	if out, err = mxq(t, url, "held", "release", ids[0]); err != nil || !strings.Contains(out, ids[0]+" released") {
		t.Fatalf("held release: %v\n%s", err, out)
	}
	got, err := q.Peek(ctx, 10)
	if err != nil || len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("after held release the queue holds %+v, %v", got, err)
	}
	if _, err := mxq(t, url, "held", "release"); err == nil {
		t.Error("held release without an id: no error")
	}
	purgeAll(t, url, "held", ids[1])
}
