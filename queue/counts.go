package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// countCmds are the commands that count the queue, sent in the caller's
// pipeline with whatever else it reads: Stats, Health and Backlog all
// start from them.
type countCmds struct {
	ready, retry, dead, held *redis.IntCmd
	first                    *redis.XMessageSliceCmd
}

// queueCounts adds the counting commands to p.
func (q *Queue) queueCounts(ctx context.Context, p redis.Pipeliner) countCmds {
	return countCmds{
		ready: p.XLen(ctx, q.key("stream")),
		retry: p.ZCard(ctx, q.key("retry")),
		dead:  p.XLen(ctx, q.key("dead")),
		held:  p.XLen(ctx, q.key("held")),
		first: p.XRangeN(ctx, q.key("stream"), "-", "+", 1),
	}
}

// cmds are the commands, for the caller's error check.
func (c countCmds) cmds() []redis.Cmder {
	return []redis.Cmder{c.ready, c.retry, c.dead, c.held, c.first}
}

// head is when the message at the head of the stream arrived; zero when
// the stream is empty.
func (c countCmds) head() time.Time {
	if ms := c.first.Val(); len(ms) == 1 {
		if r, err := decodeRecord(ms[0].Values); err == nil {
			return r.Arrived
		}
	}
	return time.Time{}
}
