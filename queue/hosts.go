package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/redisha"
)

// Heartbeat is what an MX host reports about itself every few seconds.
type Heartbeat struct {
	Host        string    `json:"host"`
	Sessions    int       `json:"sessions"`
	Draining    bool      `json:"draining"`
	Version     string    `json:"version"`
	LastEnqueue time.Time `json:"last_enqueue,omitzero"`
	Seen        time.Time `json:"seen"`
	// Reads are the record formats the host's code reads, and Writes the
	// one it writes now; Beat fills both in. A release from before
	// announcements has neither, and writes format 1.
	Reads  []int `json:"reads,omitempty"`
	Writes int   `json:"writes,omitempty"`
}

// Beat writes hb with an expiry of ttl, so that a host that stops beating
// disappears, and returns whether the drain flag of hb.Host is set: one
// round trip serves both.
func (q *Queue) Beat(ctx context.Context, hb Heartbeat, ttl time.Duration) (draining bool, err error) {
	if hb.Seen.IsZero() {
		hb.Seen = time.Now()
	}
	hb.Reads, hb.Writes = Formats(), q.WriteFormat()
	b, err := json.Marshal(hb)
	if err != nil {
		return false, err
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var drain *redis.IntCmd
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, q.key("hb", hb.Host), b, ttl)
		p.SAdd(ctx, q.key("hosts"), hb.Host)
		drain = p.Exists(ctx, q.key("drain", hb.Host))
		return nil
	})
	if err != nil {
		return false, classify(err)
	}
	return drain.Val() > 0, nil
}

// SetDraining sets or clears the drain flag of host. While it is set, the
// host's mxd answers new connections 421 4.3.2.
func (q *Queue) SetDraining(ctx context.Context, host string, on bool) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	k := q.key("drain", host)
	if on {
		return classify(q.rdb.Set(ctx, k, time.Now().UTC().Format(time.RFC3339), 0).Err())
	}
	return classify(q.rdb.Del(ctx, k).Err())
}

// Draining reports whether the drain flag of host is set.
func (q *Queue) Draining(ctx context.Context, host string) (bool, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := q.rdb.Exists(ctx, q.key("drain", host)).Result()
	return n > 0, classify(err)
}

// Inflight is how many messages host accepted that are not yet
// acknowledged by a consumer.
func (q *Queue) Inflight(ctx context.Context, host string) (int64, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := q.rdb.SCard(ctx, q.key("inflight", host)).Result()
	return n, classify(err)
}

// Depth is how many messages are queued and not yet acknowledged: in the
// stream, or waiting for a retry.
func (q *Queue) Depth(ctx context.Context) (int64, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var stream, retry *redis.IntCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		stream = p.XLen(ctx, q.key("stream"))
		retry = p.ZCard(ctx, q.key("retry"))
		return nil
	})
	return stream.Val() + retry.Val(), classify(err)
}

// HostStatus is one MX host as the queue sees it.
type HostStatus struct {
	Host string `json:"host"`
	// Alive is false when the host's heartbeat has expired; Sessions,
	// Version and LastSeen are then zero.
	Alive    bool      `json:"alive"`
	Sessions int       `json:"sessions"`
	Draining bool      `json:"draining"`
	Version  string    `json:"version,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastEnqueue is when the host last queued a message.
	LastEnqueue time.Time `json:"last_enqueue,omitzero"`
	// DrainFlag is whether the drain flag is set in Redis; Draining is
	// what the host itself last reported.
	DrainFlag bool `json:"drain_flag"`
	// Inflight is how many of its messages are not yet acknowledged.
	Inflight int64 `json:"inflight"`
	// Reads and Writes are the record formats the host reads and writes
	// now, as its heartbeat says; none for a release from before
	// announcements (which writes format 1).
	Reads  []int `json:"reads,omitempty"`
	Writes int   `json:"writes,omitempty"`
}

// Hosts returns every MX host known to the queue, sorted by name.
func (q *Queue) Hosts(ctx context.Context) ([]HostStatus, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	names, err := q.rdb.SMembers(ctx, q.key("hosts")).Result()
	if err != nil {
		return nil, classify(err)
	}
	slices.Sort(names)
	type cmds struct {
		hb       *redis.StringCmd
		drain    *redis.IntCmd
		inflight *redis.IntCmd
	}
	cs := make([]cmds, len(names))
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range names {
			cs[i] = cmds{p.Get(ctx, q.key("hb", h)), p.Exists(ctx, q.key("drain", h)), p.SCard(ctx, q.key("inflight", h))}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, classify(err)
	}
	out := make([]HostStatus, len(names))
	for i, h := range names {
		hs := HostStatus{Host: h, DrainFlag: cs[i].drain.Val() > 0, Inflight: cs[i].inflight.Val()}
		if raw, err := cs[i].hb.Bytes(); err == nil {
			var hb Heartbeat
			if err := json.Unmarshal(raw, &hb); err != nil {
				return nil, fmt.Errorf("heartbeat of %s: %w", h, err)
			}
			hs.Alive, hs.Sessions, hs.Draining, hs.Version = true, hb.Sessions, hb.Draining, hb.Version
			hs.LastSeen, hs.LastEnqueue = hb.Seen, hb.LastEnqueue
			hs.Reads, hs.Writes = hb.Reads, hb.Writes
		}
		out[i] = hs
	}
	return out, nil
}

// Stats is the operator's summary of the queue.
type Stats struct {
	// Depth: queued, not yet acknowledged (Retrying included).
	Depth int64 `json:"depth"`
	// Retrying: waiting for their next delivery attempt.
	Retrying int64 `json:"retrying"`
	// Dead: messages in the dead-letter stream.
	Dead int64 `json:"dead"`
	// Held: messages in the hold stream, not counted in Depth.
	Held int64 `json:"held"`
	// Pending: read by a consumer and not yet acknowledged.
	Pending int64 `json:"pending"`
	// Oldest is the arrival time of the oldest queued message.
	Oldest time.Time             `json:"oldest,omitzero"`
	Hosts  map[string]HostStatus `json:"hosts"`
	// Redis is the primary, its replicas and the sentinels' view.
	Redis *redisha.Replication `json:"redis"`
	// Consumers are the consumers of every group, as producers see them,
	// live meaning seen within DefaultReaderIdle.
	Consumers []Reader `json:"consumers"`
	// Left are the entries that a consumer left because their record
	// format is newer than it reads, waiting for one that reads it.
	Left []LeftEntry `json:"left,omitempty"`
}

// Stats returns depth, dead letters, every host's status, and the state
// of replication.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	hosts, err := q.Hosts(ctx)
	if err != nil {
		return Stats{}, err
	}
	repl, err := q.conn.Replication(ctx)
	if err != nil {
		return Stats{}, classify(err)
	}
	st := Stats{Hosts: make(map[string]HostStatus, len(hosts)), Redis: repl}
	for _, h := range hosts {
		st.Hosts[h.Host] = h
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var counts countCmds
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		counts = q.queueCounts(ctx, p)
		return nil
	})
	if err != nil {
		return Stats{}, classify(err)
	}
	st.Retrying = counts.retry.Val()
	st.Depth, st.Dead, st.Held = counts.ready.Val()+st.Retrying, counts.dead.Val(), counts.held.Val()
	st.Oldest = counts.head()
	if st.Consumers, err = q.Readers(ctx, DefaultReaderIdle); err != nil {
		return Stats{}, err
	}
	// Every pending entry is one consumer's: the consumers' add up to the
	// groups', without asking Redis for the groups a second time.
	for _, r := range st.Consumers {
		st.Pending += r.Pending
	}
	if st.Left, err = q.LeftEntries(ctx); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// pending counts entries delivered to a consumer and not acknowledged, over
// every consumer group (none before the first consumer starts).
func (q *Queue) pending(ctx context.Context) (int64, error) {
	groups, err := q.rdb.XInfoGroups(ctx, q.key("stream")).Result()
	if err != nil {
		return 0, classify(err)
	}
	var n int64
	for _, g := range groups {
		n += g.Pending
	}
	return n, nil
}
