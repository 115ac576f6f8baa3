package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned for a queue id that is not where it was looked
// for.
var ErrNotFound = errors.New("not found")

// DeadLetter is a message a consumer gave up on.
type DeadLetter struct {
	// ID is the queue id.
	ID string `json:"id"`
	// StreamID is the entry's id in the dead-letter stream.
	StreamID string `json:"stream_id"`
	// Record is nil when the entry could not be decoded (RecordError
	// says why).
	Record      *Record `json:"record"`
	RecordError string  `json:"record_error,omitempty"`
	// Reason is why the consumer gave up.
	Reason string `json:"reason"`
	// Attempts are every attempt with its error, oldest first.
	Attempts []Attempt `json:"attempts"`
	DeadAt   time.Time `json:"dead_at"`
	// Delivered are the recipients that have the message already; a
	// retry skips them. Rejected are those that failed for good, with the
	// reason; a retry tries them again.
	Delivered []string          `json:"delivered"`
	Rejected  map[string]string `json:"rejected,omitempty"`
}

// DeadLetters returns every dead letter, oldest first.
func (q *Queue) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var out []DeadLetter
	if err := q.eachEntry(ctx, q.key("dead"), func(m redis.XMessage) { out = append(out, decodeDead(m)) }); err != nil {
		return nil, err
	}
	if err := q.loadSettled(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeadLetter returns the dead letter of queue id, or ErrNotFound.
func (q *Queue) DeadLetter(ctx context.Context, id string) (DeadLetter, error) {
	all, err := q.DeadLetters(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	for _, d := range all {
		if d.ID == id {
			return d, nil
		}
	}
	return DeadLetter{}, fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
}

func decodeDead(m redis.XMessage) DeadLetter {
	d := DeadLetter{StreamID: m.ID, Delivered: []string{}}
	d.ID, _ = m.Values["id"].(string)
	r, err := decodeRecord(m.Values)
	if err != nil {
		d.RecordError = err.Error()
	} else {
		d.Record = r
	}
	d.Reason, _ = m.Values["reason"].(string)
	if raw, _ := m.Values["attempts"].(string); raw != "" {
		if err := json.Unmarshal([]byte(raw), &d.Attempts); err != nil {
			d.Attempts = []Attempt{{Error: raw}}
		}
	}
	if ms, err := strconv.ParseInt(fmt.Sprint(m.Values["dead_at"]), 10, 64); err == nil {
		d.DeadAt = time.UnixMilli(ms)
	}
	return d
}

func (q *Queue) loadSettled(ctx context.Context, ds []DeadLetter) error {
	if len(ds) == 0 {
		return nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ds))
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range ds {
			cmds[i] = p.HGetAll(ctx, q.key("done", d.ID))
		}
		return nil
	})
	if err != nil {
		return classify(err)
	}
	for i := range ds {
		for r, s := range cmds[i].Val() {
			if reason, ok := strings.CutPrefix(s, stateFailed); ok {
				if ds[i].Rejected == nil {
					ds[i].Rejected = map[string]string{}
				}
				ds[i].Rejected[r] = reason
			} else {
				ds[i].Delivered = append(ds[i].Delivered, r)
			}
		}
		slices.Sort(ds[i].Delivered)
	}
	return nil
}

// deadRetryScript puts a dead letter back into the stream (its v, id and
// rec fields, as a new entry) and forgets the recipients that failed for
// good, so that they are tried again; the ones delivered stay delivered.
var deadRetryScript = newScript[deadRetryKeys, deadEntry](`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f, keep = e[1][2], {}
for i = 1, #f, 2 do
  if f[i] ~= 'reason' and f[i] ~= 'attempts' and f[i] ~= 'dead_at' then
    table.insert(keep, f[i]) table.insert(keep, f[i+1])
  end
end
redis.call('XADD', KEYS[2], '*', unpack(keep))
redis.call('XDEL', KEYS[1], ARGV[1])
local s = redis.call('HGETALL', KEYS[3])
for i = 1, #s, 2 do
  if string.sub(s[i+1], 1, 7) == 'failed:' then redis.call('HDEL', KEYS[3], s[i]) end
end
return 1
`)

type deadRetryKeys struct{ dead, stream, done string }

func (k deadRetryKeys) keys() []string { return []string{k.dead, k.stream, k.done} }

// deadEntry is the id of an entry of the dead-letter stream.
type deadEntry struct{ streamID string }

func (a deadEntry) args() []any { return []any{a.streamID} }

// RetryDead puts the dead letter of queue id back into the queue. Its
// attempts start again from one.
func (q *Queue) RetryDead(ctx context.Context, id string) error {
	d, err := q.DeadLetter(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	keys := deadRetryKeys{dead: q.key("dead"), stream: q.key("stream"), done: q.key("done", id)}
	n, err := deadRetryScript.run(ctx, q.rdb, keys, deadEntry{d.StreamID}).Int()
	if err != nil {
		return fmt.Errorf("retry dead letter %s: %w", id, classify(err))
	}
	if n == 0 {
		return fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	return nil
}

// deadPurgeScript deletes a dead letter with its body and state.
var deadPurgeScript = newScript[deadPurgeKeys, deadEntry](`
local n = redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return n
`)

type deadPurgeKeys struct{ dead, body, done, tries string }

func (k deadPurgeKeys) keys() []string { return []string{k.dead, k.body, k.done, k.tries} }

// PurgeDead deletes the dead letter of queue id and its body for good.
func (q *Queue) PurgeDead(ctx context.Context, id string) error {
	d, err := q.DeadLetter(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	keys := deadPurgeKeys{dead: q.key("dead"), body: q.key("body", id), done: q.key("done", id), tries: q.key("tries", id)}
	if err := deadPurgeScript.run(ctx, q.rdb, keys, deadEntry{d.StreamID}).Err(); err != nil {
		return fmt.Errorf("purge dead letter %s: %w", id, classify(err))
	}
	return nil
}

// DeadBody returns a reader of the stored body of a dead letter, which
// fetches it from Redis a few chunks at a time.
func (q *Queue) DeadBody(ctx context.Context, id string) (io.Reader, error) {
	d, err := q.DeadLetter(ctx, id)
	if err != nil {
		return nil, err
	}
	return q.recordBody(ctx, id, d.Record)
}

// recordBody opens the body of id, whose record is r (nil: unknown). The
// key's type says the format.
func (q *Queue) recordBody(ctx context.Context, id string, r *Record) (io.Reader, error) {
	size := int64(-1)
	if r != nil {
		size = r.Size
	}
	b, err := q.openBody(ctx, id, size)
	if err != nil {
		return nil, err
	}
	return b.reader(), nil
}
