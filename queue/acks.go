package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// With appendfsync always, Redis writes and fsyncs its AOF once per pass
// of its event loop, before it replies; an acknowledgement waits for one
// such fsync. Concurrent acknowledgements therefore share one: while a
// batch is on its way, the ones that come in meanwhile gather, and the
// first of them sends them all in one pipeline, on one connection, when
// the batch before is answered. Each is still its own ackScript, checked
// and answered on its own.

type ackReq struct {
	d   *Delivery
	err error
}

// ack sends d's acknowledgement with the others that are waiting and
// returns its result. ctx only decides whether d joins a batch: a batch
// carries several deliveries' acknowledgements, so it runs under a
// context of its own, bounded by Options.Timeout, and whichever of them
// happens to send it cannot cancel the others'.
func (c *Consumer) ack(ctx context.Context, d *Delivery) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("acknowledge %s: %w", d.ID, err)
	}
	r := &ackReq{d: d}
	c.acks.Do(r, c.ackAll)
	return r.err
}

// ackAll runs ackScript for every request in one pipeline and sets each
// request's err.
func (c *Consumer) ackAll(reqs []*ackReq) {
	ctx, cancel := c.q.ctx(context.Background())
	defer cancel()
	cmds := make([]*redis.Cmd, len(reqs))
	send := func() error {
		_, err := c.q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range reqs {
				cmds[i] = ackScript.evalSha(ctx, p, r.d.ackKeys(), r.d.ackArgs())
			}
			return nil
		})
		return err
	}
	err := send()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Script.Run falls back to EVAL by itself; in a pipeline it
		// cannot (go-redis only retries EVALSHA outside pipelines, and
		// after a failover the new primary may not have the script):
		// load the script, send again.
		if err = ackScript.load(ctx, c.q.rdb).Err(); err == nil {
			send()
		}
	}
	for i, r := range reqs {
		n, err := cmds[i].Int()
		r.err = r.d.scriptResult("acknowledge", n, err)
	}
}
