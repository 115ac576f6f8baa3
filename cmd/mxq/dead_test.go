package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// deadEnv is a Redis with two dead letters and one message waiting for a
// retry.
func deadEnv(t *testing.T) (url string, q *queue.Queue, ids []string) {
	t.Helper()
	url, q = startQueue(t)
	ctx := context.Background()
	for i := range 3 {
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "alice@example.com", Arrived: time.Now(),
			Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}, {Addr: "ops@lists.example.org"}}}
		switch i {
		case 1: // a client's HELO name that would clear the operator's screen
			rec.HELO = "\x1b[2Jevil.example"
		case 2:
			rec.From = ""
		}
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte("Subject: " + rec.ID + "\r\n\r\nx\r\n")}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	copt := queue.DefaultConsumerOptions()
	copt.Block, copt.RetryMin, copt.RetryMax = 10*time.Millisecond, time.Hour, time.Hour
	c := q.Consumer(copt)
	for n := 0; n < 3; {
		ds, err := c.Fetch(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			n++
			switch d.ID {
			case ids[0]:
				d.Delivered(ctx, "dev@lists.example.org")
				d.Reject(ctx, "ops@lists.example.org", errors.New("550 5.1.1 no such list"))
				err = d.Dead(ctx, "rejected for good: <ops@lists.example.org>: 550 5.1.1 no such list")
			case ids[1]:
				err = d.Dead(ctx, "no route")
			default:
				_, err = d.Retry(ctx, errors.New("451 4.3.0 busy"))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return url, q, ids
}

// startQueue starts a Redis and opens the queue in it.
func startQueue(t *testing.T) (url string, q *queue.Queue) {
	t.Helper()
	r := queuetest.StartRedis(t)
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return r.URL(), q
}

// purgeAll runs `mxq KIND purge --all` (KIND dead or held), checks that
// it purged exactly want, and that `mxq KIND ls` then lists nothing.
func purgeAll(t *testing.T, url, kind string, want ...string) {
	t.Helper()
	out, err := mxq(t, url, kind, "purge", "--all", "-json")
	var purged map[string][]string
	if err != nil || json.Unmarshal([]byte(out), &purged) != nil {
		t.Fatalf("%s purge --all: %v\n%s", kind, err, out)
	}
	if diff := cmp.Diff(map[string][]string{"ids": want}, purged); diff != "" {
		t.Errorf("purged (-want +got):\n%s", diff)
	}
	if out, _ := mxq(t, url, kind, "ls", "-json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("%s ls after purge: %s", kind, out)
	}
}

func mxq(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"-redis", url}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestDeadCommands(t *testing.T) {
	url, q, ids := deadEnv(t)
	ctx := context.Background()

	out, err := mxq(t, url, "dead", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "REASON", ids[0], ids[1], "no route", "2 dead letters"} {
		if !strings.Contains(out, want) {
			t.Errorf("dead ls lacks %q:\n%s", want, out)
		}
	}
	out, err = mxq(t, url, "dead", "ls", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var ls []queue.DeadLetter
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 2 {
		t.Fatalf("dead ls -json: %v\n%s", err, out)
	}

	out, err = mxq(t, url, "dead", "show", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<dev@lists.example.org>  delivered", "<ops@lists.example.org>  rejected: 550 5.1.1 no such list", "attempts:   1", "#1 "} {
		if !strings.Contains(out, want) {
			t.Errorf("dead show lacks %q:\n%s", want, out)
		}
	}
	out, err = mxq(t, url, "dead", "show", ids[1])
	if err != nil || !strings.Contains(out, `(\x1b[2Jevil.example)`) || strings.Contains(out, "\x1b") {
		t.Errorf("dead show of a HELO name with an escape sequence: %v\n%s", err, out)
	}
	out, err = mxq(t, url, "dead", "show", "-json", ids[0])
	var dl queue.DeadLetter
	if err != nil || json.Unmarshal([]byte(out), &dl) != nil || dl.ID != ids[0] || len(dl.Attempts) != 1 {
		t.Fatalf("dead show -json: %v\n%s", err, out)
	}
	if _, err := mxq(t, url, "dead", "show", "nosuchid"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("dead show of an unknown id: %v", err)
	}

	out, err = mxq(t, url, "peek")
	if err != nil || !strings.Contains(out, ids[2]) || !strings.Contains(out, "retry in") || !strings.Contains(out, "<>") {
		t.Errorf("peek: %v\n%s", err, out)
	}
	out, err = mxq(t, url, "peek", "-json", "-n", "5")
	var pr peekResult
	if err != nil || json.Unmarshal([]byte(out), &pr) != nil || len(pr.Scheduled) != 1 || len(pr.Ready) != 0 {
		t.Errorf("peek -json: %v\n%s", err, out)
	}

	if out, err = mxq(t, url, "dead", "retry", ids[0]); err != nil || !strings.Contains(out, ids[0]+" put back") {
		t.Fatalf("dead retry: %v\n%s", err, out)
	}
	got, err := q.Peek(ctx, 10)
	if err != nil || len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("after dead retry the queue holds %+v, %v", got, err)
	}
	if _, err := mxq(t, url, "dead", "retry", "--all", ids[1]); err == nil {
		t.Error("dead retry with ids and --all: no error")
	}
	purgeAll(t, url, "dead", ids[1])
}
