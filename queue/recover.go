package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// A failover can lose writes that Redis had answered: Sentinel promotes a
// replica that did not have them yet (WAIT makes that unlikely, not
// impossible: docs/redis.md). For a consumer the writes that matter are
// the acknowledgement and the per-recipient marks; losing either makes a
// message come back. Two things keep that cheap:
//
//   - The consumer remembers the queue ids it acknowledged last
//     (ConsumerOptions.RememberAcks). A delivery of one of them reports
//     AckedBefore: every recipient has the message, and the caller
//     acknowledges it again instead of delivering it again.
//   - After a failure that passes (Transient: a failover, a restart, a
//     dropped connection), the next Fetch reads the consumer's own pending
//     entries again (XREADGROUP from id 0) and returns those that none of
//     its deliveries holds: their acknowledgement, retry or release was
//     lost, or failed. Without that they would wait out the lease before
//     XAUTOCLAIM finds them.

// ConsumerStats counts what a failover may cost a consumer.
type ConsumerStats struct {
	// UnconfirmedAcks are acknowledgements that Redis applied but fewer
	// than Options.Replicas replicas confirmed within
	// Options.ReplicaTimeout. They are acknowledgements all the same; a
	// failover before a replica has them brings the message back.
	UnconfirmedAcks int64
	// UnconfirmedMarks are the same for per-recipient marks
	// (Delivery.Delivered, Delivery.Reject).
	UnconfirmedMarks int64
	// TakenBack are entries read again from the consumer's own pending
	// list after a failure, because none of its deliveries held them.
	TakenBack int64
}

// Stats returns the consumer's counters since it was made.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		UnconfirmedAcks:  c.unconfirmedAcks.Load(),
		UnconfirmedMarks: c.unconfirmedMarks.Load(),
		TakenBack:        c.takenBack.Load(),
	}
}

// recentIDs is a set of the last ids added to it, at most cap.
type recentIDs struct {
	set  map[string]struct{}
	ring []string
	next int
}

func (r *recentIDs) add(id string, capacity int) {
	if r.set == nil {
		r.set = make(map[string]struct{})
		r.ring = make([]string, 0, min(capacity, 1024))
	}
	if _, ok := r.set[id]; ok {
		return
	}
	if len(r.ring) < capacity {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % capacity
	}
	r.set[id] = struct{}{}
}

func (r *recentIDs) has(id string) bool {
	_, ok := r.set[id]
	return ok
}

// rememberAck notes that id is acknowledged (or about to be: the caller
// says every recipient has the message).
func (c *Consumer) rememberAck(id string) {
	c.mu.Lock()
	c.acked.add(id, c.opt.RememberAcks)
	c.mu.Unlock()
}

// noteErr notes a failure that passes: the next Fetch looks at the
// consumer's own pending entries again.
func (c *Consumer) noteErr(err error) {
	if err != nil && Transient(err) {
		c.mu.Lock()
		c.suspect = true
		c.mu.Unlock()
	}
}

// hold marks the entries of msgs as held by a delivery of this consumer
// and returns them, leaving out those already held when skipHeld is set.
func (c *Consumer) hold(msgs []redis.XMessage, skipHeld bool) []redis.XMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := msgs[:0:0]
	for _, m := range msgs {
		if skipHeld && (c.held[m.ID] || c.settledMeanwhile[m.ID]) {
			continue
		}
		c.held[m.ID] = true
		out = append(out, m)
	}
	return out
}

// unhold forgets the entries of deliveries that were settled (whatever
// the result: a settlement that failed leaves the entry to takeBack or to
// the lease) or never handed out.
func (c *Consumer) unhold(streamIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range streamIDs {
		delete(c.held, id)
		if c.settledMeanwhile != nil {
			c.settledMeanwhile[id] = true
		}
	}
}

// takeBack reads again, after a failure that passes, the entries pending
// to this consumer, and returns those no delivery of it holds: at most
// n, one page per call, until a pass over the pending list is complete.
func (c *Consumer) takeBack(ctx context.Context, n int) ([]*Delivery, error) {
	c.mu.Lock()
	if !c.suspect || c.settledMeanwhile != nil {
		c.mu.Unlock()
		return nil, nil
	}
	// An entry settled while the read is on its way is still in the
	// reply: settledMeanwhile keeps hold from taking it for a lost one.
	c.settledMeanwhile = make(map[string]bool)
	cursor := c.backCursor
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.settledMeanwhile = nil
		c.mu.Unlock()
	}()

	ctx, cancel := c.q.ctx(ctx)
	defer cancel()
	res, err := c.q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.opt.Group, Consumer: c.opt.Name,
		Streams: []string{c.q.key("stream"), cursor},
		Count:   int64(n), Block: -1,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		c.groupLost(err)
		return nil, fmt.Errorf("read own pending entries: %w", classify(err))
	}
	var msgs []redis.XMessage
	var gone []string
	for _, s := range res {
		for _, m := range s.Messages {
			cursor = m.ID
			if len(m.Values) == 0 {
				gone = append(gone, m.ID) // pending, but its data is gone
				continue
			}
			msgs = append(msgs, m)
		}
	}
	if err := c.ackDeleted(ctx, gone); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(msgs)+len(gone) < n {
		c.suspect, c.backCursor = false, "0" // the pass is complete
	} else {
		c.backCursor = cursor
	}
	c.mu.Unlock()
	ds, err := c.begin(ctx, msgs, fromOwnList)
	c.takenBack.Add(int64(len(ds)))
	return ds, err
}
