package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Readers never throw away what is too new: an entry whose record format
// is newer than this code reads is not dead-lettered, but left for a
// consumer that reads it. Leave hands it back at once, as Release does,
// and notes it in {NAME}:left (stream id → LeftEntry), which mxq stats
// shows; the consumer that takes it over next does not count the
// hand-back as a failed attempt.

// TooNew reports whether the entry's record format is newer than this
// code reads. Such a delivery has no Record and a non-nil Err, and must
// be left (Leave), not dead-lettered.
func (d *Delivery) TooNew() bool { return d.version > FormatVersion }

// Format is the record format of the entry, 0 when it has none.
func (d *Delivery) Format() int { return d.version }

// LeftEntry is an entry a consumer left because it does not read its
// record format.
type LeftEntry struct {
	StreamID string    `json:"stream_id"`
	ID       string    `json:"id"`
	Format   int       `json:"format"`
	Consumer string    `json:"consumer"`
	At       time.Time `json:"at"`
}

// leaveScript hands the entry back like releaseScript and notes it in
// the left hash.
var leaveScript = newScript[leaveKeys, leaveArgs](ownerCheck + `
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
return 1
`)

type leaveKeys struct{ stream, left string }

func (k leaveKeys) keys() []string { return []string{k.stream, k.left} }

type leaveArgs struct {
	owner  ownerArgs
	idleMS int64
	entry  []byte // LeftEntry, JSON
}

func (a leaveArgs) args() []any { return append(a.owner.args(), a.idleMS, a.entry) }

// Leave gives the entry up without acknowledging it, dead-lettering it
// or counting an attempt, for a consumer that reads its format to take
// over.
func (d *Delivery) Leave(ctx context.Context) error {
	e, _ := json.Marshal(LeftEntry{StreamID: d.StreamID, ID: d.ID, Format: d.version, Consumer: d.c.opt.Name, At: d.c.opt.Now().UTC()})
	q := d.c.q
	args := leaveArgs{owner: d.owner(), idleMS: d.c.opt.Lease.Milliseconds() + 1, entry: e}
	return runOwned(ctx, d, "leave", leaveScript, leaveKeys{stream: q.key("stream"), left: q.key("left")}, args)
}

// LeftEntries returns the entries left by a consumer that does not read
// their format and still queued, oldest first.
func (q *Queue) LeftEntries(ctx context.Context) ([]LeftEntry, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	all, gone, err := q.leftEntries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]LeftEntry, 0, len(all))
	for _, e := range all {
		if !slices.Contains(gone, e.StreamID) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b LeftEntry) int { return a.At.Compare(b.At) })
	return out, nil
}

// leftEntries reads the left hash, and which of its entries are no
// longer in the stream (acknowledged or dead-lettered since, by a
// consumer that does not know the hash).
func (q *Queue) leftEntries(ctx context.Context) (all []LeftEntry, gone []string, err error) {
	m, err := q.rdb.HGetAll(ctx, q.key("left")).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("left entries: %w", classify(err))
	}
	if len(m) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, 0, len(m))
	cmds := make([]*redis.XMessageSliceCmd, 0, len(m))
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id := range m {
			ids = append(ids, id)
			cmds = append(cmds, p.XRange(ctx, q.key("stream"), id, id))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("left entries: %w", classify(err))
	}
	for i, id := range ids {
		var e LeftEntry
		if json.Unmarshal([]byte(m[id]), &e) != nil {
			e = LeftEntry{StreamID: id}
		}
		all = append(all, e)
		if len(cmds[i].Val()) == 0 {
			gone = append(gone, id)
		}
	}
	return all, gone, nil
}

// forgetLeft removes the notes of left entries that are gone from the
// stream.
func (c *Consumer) forgetLeft(ctx context.Context) {
	_, gone, err := c.q.leftEntries(ctx)
	if err != nil || len(gone) == 0 {
		return
	}
	c.q.rdb.HDel(ctx, c.q.key("left"), gone...)
}
