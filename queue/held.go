package queue

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// HeldMessage is a message queued held (Message.HoldReason): stored, with
// its dedup key, but in the hold stream, which no consumer reads, until
// an operator releases or purges it. A content filter's quarantine puts
// it there; it is Postfix's hold queue.
type HeldMessage struct {
	// ID is the queue id.
	ID string `json:"id"`
	// StreamID is the entry's id in the hold stream.
	StreamID string `json:"stream_id"`
	// Record is nil when the entry could not be decoded (RecordError
	// says why).
	Record      *Record `json:"record"`
	RecordError string  `json:"record_error,omitempty"`
	// Reason is why it is held, as the producer gave it.
	Reason string    `json:"reason"`
	HeldAt time.Time `json:"held_at"`
}

// HeldMessages returns every held message, oldest first.
func (q *Queue) HeldMessages(ctx context.Context) ([]HeldMessage, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var out []HeldMessage
	err := q.eachEntry(ctx, q.key("held"), func(m redis.XMessage) {
		h := HeldMessage{StreamID: m.ID}
		h.ID, _ = m.Values["id"].(string)
		if r, err := decodeRecord(m.Values); err != nil {
			h.RecordError = err.Error()
		} else {
			h.Record = r
		}
		h.Reason, _ = m.Values["reason"].(string)
		if ms, err := strconv.ParseInt(fmt.Sprint(m.Values["held_at"]), 10, 64); err == nil {
			h.HeldAt = time.UnixMilli(ms)
		}
		out = append(out, h)
	})
	return out, err
}

// eachEntry calls f for each entry of the stream key, oldest first, a
// page at a time.
func (q *Queue) eachEntry(ctx context.Context, key string, f func(redis.XMessage)) error {
	start := "-"
	for {
		ms, err := q.rdb.XRangeN(ctx, key, start, "+", 500).Result()
		if err != nil {
			return classify(err)
		}
		for _, m := range ms {
			f(m)
		}
		if len(ms) < 500 {
			return nil
		}
		start = "(" + ms[len(ms)-1].ID
	}
}

// HeldMessage returns the held message of queue id, or ErrNotFound.
func (q *Queue) HeldMessage(ctx context.Context, id string) (HeldMessage, error) {
	all, err := q.HeldMessages(ctx)
	if err != nil {
		return HeldMessage{}, err
	}
	for _, h := range all {
		if h.ID == id {
			return h, nil
		}
	}
	return HeldMessage{}, fmt.Errorf("held message %s: %w", id, ErrNotFound)
}

// heldReleaseScript moves a held message into the queue's stream: its v,
// id and rec fields, as a new entry, which consumers read as any other.
// The entry is not added to its MX host's inflight set: the host that
// took the message may have been drained or gone since.
var heldReleaseScript = newScript[heldKeys, heldEntry](`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f, keep = e[1][2], {}
for i = 1, #f, 2 do
  if f[i] == 'v' or f[i] == 'id' or f[i] == 'rec' then
    table.insert(keep, f[i]) table.insert(keep, f[i+1])
  end
end
redis.call('XADD', KEYS[2], '*', unpack(keep))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`)

// heldKeys are the keys of heldReleaseScript and heldPurgeScript: the
// hold stream, and the stream (release) or the body (purge).
type heldKeys struct{ held, other string }

func (k heldKeys) keys() []string { return []string{k.held, k.other} }

// heldEntry is the id of an entry of the hold stream.
type heldEntry struct{ streamID string }

func (a heldEntry) args() []any { return []any{a.streamID} }

// ReleaseHeld puts the held message of queue id into the queue, in the
// record format it was written in: the consumers deliver it.
func (q *Queue) ReleaseHeld(ctx context.Context, id string) error {
	return q.onHeld(ctx, id, "release", heldReleaseScript, func(string) heldKeys {
		return heldKeys{held: q.key("held"), other: q.key("stream")}
	})
}

// onHeld runs script on the hold stream's entry of queue id; what it
// does is named by op in errors.
func (q *Queue) onHeld(ctx context.Context, id, op string, script script[heldKeys, heldEntry], keys func(id string) heldKeys) error {
	h, err := q.HeldMessage(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := script.run(ctx, q.rdb, keys(id), heldEntry{h.StreamID}).Int()
	if err != nil {
		return fmt.Errorf("%s held message %s: %w", op, id, classify(err))
	}
	if n == 0 {
		return fmt.Errorf("held message %s: %w", id, ErrNotFound)
	}
	return nil
}

// heldPurgeScript deletes a held message with its body.
var heldPurgeScript = newScript[heldKeys, heldEntry](`
local n = redis.call('XDEL', KEYS[1], ARGV[1])
if n == 1 then redis.call('DEL', KEYS[2]) end
return n
`)

// PurgeHeld deletes the held message of queue id and its body for good.
// Its dedup key stays until it expires, so the same message sent again
// within dedup_window is taken for a duplicate of it and not queued.
func (q *Queue) PurgeHeld(ctx context.Context, id string) error {
	return q.onHeld(ctx, id, "purge", heldPurgeScript, func(id string) heldKeys {
		return heldKeys{held: q.key("held"), other: q.key("body", id)}
	})
}

// HeldBody returns a reader of the stored body of a held message, which
// fetches it from Redis a few chunks at a time.
func (q *Queue) HeldBody(ctx context.Context, id string) (io.Reader, error) {
	h, err := q.HeldMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	return q.recordBody(ctx, id, h.Record)
}
