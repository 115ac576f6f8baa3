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
//
// With Options.Replicas, a batch ends with WAIT in the same pipeline: WAIT
// counts the writes of its own connection, so the batch holds one
// connection for all of it, and one WAIT covers every write of the batch.
// The per-recipient marks then go in the same batches, so that they share
// the waits too. A write that the replicas do not confirm in time stands
// (Redis applied it, and a consumer cannot take an acknowledgement back);
// it is counted, since a failover now would lose it.

// ackReq is one write of a batch: an acknowledgement, or a recipient's
// state when rcpt is set.
type ackReq struct {
	d           *Delivery
	rcpt, state string
	err         error
}

// ack sends d's acknowledgement with the others that are waiting and
// returns its result. ctx only decides whether d joins a batch: a batch
// carries several deliveries' acknowledgements, so it runs under a
// context of its own, bounded by Options.Timeout (plus ReplicaTimeout),
// and whichever of them happens to send it cannot cancel the others'.
func (c *Consumer) ack(ctx context.Context, d *Delivery) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("acknowledge %s: %w", d.ID, err)
	}
	r := &ackReq{d: d}
	c.acks.Do(r, c.ackAll)
	return r.err
}

// mark records rcpt's state for d in the next batch (used with replicas).
func (c *Consumer) mark(ctx context.Context, d *Delivery, rcpt, state string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &ackReq{d: d, rcpt: rcpt, state: state}
	c.acks.Do(r, c.ackAll)
	return r.err
}

// ackAll sends every request in one pipeline, with WAIT at the end when
// replicas must confirm, and sets each request's err.
func (c *Consumer) ackAll(reqs []*ackReq) {
	replicas := c.q.opt.Replicas
	timeout := c.q.opt.Timeout
	if replicas > 0 {
		timeout += c.q.opt.ReplicaTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn := c.q.rdb.Conn()
	defer conn.Close()
	cmds := make([]redis.Cmder, len(reqs))
	var wait *redis.Cmd
	send := func(which []int) {
		conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				r := reqs[i]
				if r.rcpt != "" {
					cmds[i] = markScript.evalSha(ctx, p, r.d.markKeys(), markArgs{r.rcpt, r.state})
				} else {
					cmds[i] = ackScript.evalSha(ctx, p, r.d.ackKeys(), r.d.ackArgs())
				}
			}
			if replicas > 0 {
				wait = p.Do(ctx, "wait", replicas, c.q.opt.ReplicaTimeout.Milliseconds())
			}
			return nil
		})
	}
	all := make([]int, len(reqs))
	for i := range all {
		all[i] = i
	}
	send(all)
	// Script.Run falls back to EVAL by itself; in a pipeline it cannot
	// (go-redis only retries EVALSHA outside pipelines), and after a
	// failover or a restart Redis may not have the script (SCRIPT LOAD is
	// not replicated): load it, and send again what it refused, and only
	// that (an acknowledgement that went through would fail a second
	// time).
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 && ackScript.load(ctx, conn).Err() == nil && markScript.load(ctx, conn).Err() == nil {
		send(again)
	}
	confirmed := replicas == 0 || c.q.waited(wait) == nil
	for i, r := range reqs {
		if r.rcpt != "" {
			r.err = cmds[i].Err()
			if r.err == nil && !confirmed {
				c.unconfirmedMarks.Add(1)
			}
			continue
		}
		n, err := cmds[i].(*redis.Cmd).Int()
		r.err = r.d.scriptResult("acknowledge", n, err)
		if r.err == nil && !confirmed {
			c.unconfirmedAcks.Add(1)
		}
	}
}
