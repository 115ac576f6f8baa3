package lists_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

// When the body cannot be read to its end in the middle of the data
// (here: its key vanishes after the first chunks were sent), the
// transaction is cut off without the end-of-data mark, so neither an SMTP
// relay nor Dovecot's LMTP takes the part it got for a message; the
// delivery is retried and the next attempt delivers the whole message
// once.
func TestBodyFailsInTheMiddleOfData(t *testing.T) {
	const lmtpRcpt, smtpRcpt = "lmtp@lists.example.org", "smtp@lists.example.org"
	dv := liststest.StartDovecot(t, lmtpRcpt)
	relay := liststest.StartMTA(t, false)
	e := newEnv(t)
	rdb := redis.NewClient(&redis.Options{Addr: e.r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	r := &lists.Router{Routes: []lists.Route{
		{Match: lmtpRcpt, To: &lists.LMTP{Addr: dv.Socket()}},
		{Match: smtpRcpt, To: &lists.SMTP{Addr: relay.Addr}},
	}}
	id := queue.NewID(time.Now())
	// Many more chunks than a delivery fetches with the entry.
	stored := append([]byte(mxHeader), bigData(id, 2<<20, 3)...)
	rec := e.putBig(t, stored[len(mxHeader):], lmtpRcpt, smtpRcpt)
	body, hidden := "{mxq}:body:"+rec.ID, "{mxq}:hidden:"+rec.ID

	var mu sync.Mutex
	var firstErr error
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		if m.Attempt > 1 {
			return r.Deliver(ctx, m)
		}
		// The delivery holds the first chunks already; the rest is gone
		// until this attempt is over.
		if err := rdb.Rename(ctx, body, hidden).Err(); err != nil {
			t.Error(err)
		}
		err := r.Deliver(ctx, m)
		if rerr := rdb.Rename(ctx, hidden, body).Err(); rerr != nil {
			t.Error(rerr)
		}
		mu.Lock()
		firstErr = err
		mu.Unlock()
		return err
	})
	e.run(t, fastRetries, h)
	waitFor(t, "delivery", e.drained(t))

	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(firstErr, queue.ErrBodyChanged) || lists.IsPermanent(firstErr) {
		t.Errorf("first attempt: %v, want a temporary error that wraps queue.ErrBodyChanged", firstErr)
	}
	msgs := relay.Messages()
	if len(msgs) != 1 || !bytes.Equal(msgs[0], stored) {
		sizes := []int{}
		for _, m := range msgs {
			sizes = append(sizes, len(m))
		}
		t.Errorf("the SMTP relay accepted messages of %v bytes, want one of %d", sizes, len(stored))
	}
	if ids := dv.MessageIDs(lmtpRcpt); len(ids) != 1 {
		t.Fatalf("Dovecot stored %d messages (%v), want 1", len(ids), ids)
	}
	out, err := dv.Fetch(lmtpRcpt, "text")
	if err != nil {
		t.Fatal(err)
	}
	if want := lf(stored); !bytes.HasSuffix(out, want) {
		t.Errorf("Dovecot stored %d bytes that do not end with the message's %d", len(out), len(want))
	}
}
