package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backlog is what is left to consume, as a consumer's metrics report it.
type Backlog struct {
	// Ready are entries in the stream, read or not.
	Ready int64 `json:"ready"`
	// Pending are entries read by a consumer and not yet settled.
	Pending int64 `json:"pending"`
	// Scheduled are messages waiting for their next attempt.
	Scheduled int64 `json:"scheduled"`
	// Dead are messages in the dead-letter stream.
	Dead int64 `json:"dead"`
	// Oldest is when the oldest message not yet consumed arrived; zero
	// when there is none.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Depth is every message not yet consumed: ready plus scheduled.
func (b Backlog) Depth() int64 { return b.Ready + b.Scheduled }

// minScript returns the smallest member of the given sets: queue ids sort
// by time, so it is the oldest message every MX host still waits for.
var minScript = newScript[keyList, noArgs](`
local best = false
for _, k in ipairs(KEYS) do
  for _, m in ipairs(redis.call('SMEMBERS', k)) do
    if not best or m < best then best = m end
  end
end
return best
`)

// Backlog returns the counts and the oldest message's age.
func (q *Queue) Backlog(ctx context.Context) (Backlog, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var b Backlog
	var counts countCmds
	var hosts *redis.StringSliceCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		counts = q.queueCounts(ctx, p)
		hosts = p.SMembers(ctx, q.key("hosts"))
		return nil
	})
	if err != nil {
		return b, classify(err)
	}
	b.Ready, b.Scheduled, b.Dead = counts.ready.Val(), counts.retry.Val(), counts.dead.Val()
	b.Oldest = counts.head()
	if hs := hosts.Val(); len(hs) > 0 {
		keys := make(keyList, len(hs))
		for i, h := range hs {
			keys[i] = q.key("inflight", h)
		}
		id, err := minScript.run(ctx, q.rdb, keys, noArgs{}).Text()
		if err != nil && !errors.Is(err, redis.Nil) {
			return b, classify(err)
		}
		if t, ok := IDTime(id); ok && (b.Oldest.IsZero() || t.Before(b.Oldest)) {
			b.Oldest = t
		}
	}
	if n, err := q.pending(ctx); err == nil {
		b.Pending = n
	}
	return b, nil
}

// IDTime returns the time a queue id made by NewID was made, to the
// millisecond.
func IDTime(id string) (time.Time, bool) {
	if len(id) != 24 {
		return time.Time{}, false
	}
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) != 15 {
		return time.Time{}, false
	}
	var ms [8]byte
	copy(ms[2:], b[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))), true
}

// Scheduled is a message waiting for its next attempt.
type Scheduled struct {
	Record *Record `json:"record"`
	// Due is when the next attempt may start.
	Due time.Time `json:"due"`
	// Attempts is how many attempts failed so far.
	Attempts int64 `json:"attempts"`
}

// Scheduled returns up to n of the messages waiting for a retry, the one
// due first first.
func (q *Queue) Scheduled(ctx context.Context, n int64) ([]Scheduled, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	zs, err := q.rdb.ZRangeWithScores(ctx, q.key("retry"), 0, n-1).Result()
	if err != nil || len(zs) == 0 {
		return nil, classify(err)
	}
	recs := make([]*redis.MapStringStringCmd, len(zs))
	tries := make([]*redis.IntCmd, len(zs))
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			id := fmt.Sprint(z.Member)
			recs[i] = p.HGetAll(ctx, q.key("wait", id))
			tries[i] = p.HLen(ctx, q.key("tries", id))
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Scheduled, 0, len(zs))
	for i, z := range zs {
		vals := map[string]any{}
		for k, v := range recs[i].Val() {
			vals[k] = v
		}
		r, err := decodeRecord(vals)
		if err != nil {
			r = &Record{ID: fmt.Sprint(z.Member)}
		}
		out = append(out, Scheduled{Record: r, Due: time.UnixMilli(int64(z.Score)), Attempts: tries[i].Val()})
	}
	return out, nil
}
