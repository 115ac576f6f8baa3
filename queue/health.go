package queue

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/redisha"
)

// Health is the queue's state as a monitoring system reads it, every few
// seconds: what Redis can answer without walking the queue. Every command
// behind it costs O(1) or O(log n) in the depth of the queue (XLEN, ZCARD,
// XINFO GROUPS, the first stream entry, SCARD, INFO), so that reading it at
// a depth of a million costs what it costs when the queue is empty. The
// per-host part grows with the number of MX hosts, not with the mail.
type Health struct {
	// Depth: queued, not yet acknowledged (Retrying included).
	Depth int64 `json:"depth"`
	// Pending: read by a consumer and not yet settled, over every group.
	Pending int64 `json:"pending"`
	// Retrying: waiting for their next delivery attempt.
	Retrying int64 `json:"retrying"`
	// Dead: messages in the dead-letter stream.
	Dead int64 `json:"dead"`
	// Held: messages in the hold stream (a content filter's quarantine),
	// not counted in Depth: no consumer reads them.
	Held int64 `json:"held"`
	// Head is when the message at the head of the stream arrived (its
	// record's Arrived): the one consumers reach first, read or not.
	// Zero when the stream is empty. A message waiting for a retry is not
	// in the stream and not counted here.
	Head time.Time `json:"head,omitzero"`
	// UsedMemory and MaxMemory are INFO memory's used_memory and
	// maxmemory, in bytes; MaxMemory is 0 when Redis has no limit.
	UsedMemory int64 `json:"used_memory"`
	MaxMemory  int64 `json:"maxmemory"`
	// CPUSeconds is the CPU time, user and system, Redis's main thread
	// has used since the server started (INFO cpu's *_main_thread; the
	// whole process's where Redis does not report the thread). That
	// thread runs every command: its rate of use, as a fraction of one
	// core, is how much of the queue's capacity is taken.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Hosts are the MX hosts, sorted by name.
	Hosts []HostHealth `json:"hosts"`
}

// HostHealth is one MX host as Health reads it.
type HostHealth struct {
	Host string `json:"host"`
	// Alive is false when the heartbeat has expired; Seen and Sessions
	// are then zero.
	Alive    bool      `json:"alive"`
	Seen     time.Time `json:"seen,omitzero"`
	Sessions int       `json:"sessions"`
	// Draining is whether the host's drain flag is set in Redis, and
	// DrainSince when it was set (zero if the flag holds no time).
	Draining   bool      `json:"draining"`
	DrainSince time.Time `json:"drain_since,omitzero"`
	// Inflight is how many of its messages are not yet acknowledged.
	Inflight int64 `json:"inflight"`
}

// Health reads the queue's state in two round trips: the queue-wide
// counts, then one line per MX host.
func (q *Queue) Health(ctx context.Context) (Health, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var h Health
	var counts countCmds
	var groups *redis.XInfoGroupsCmd
	var mem, cpu *redis.StringCmd
	var hosts *redis.StringSliceCmd
	_, _ = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		counts = q.queueCounts(ctx, p)
		groups = p.XInfoGroups(ctx, q.key("stream"))
		mem = p.Info(ctx, "memory")
		cpu = p.Info(ctx, "cpu")
		hosts = p.SMembers(ctx, q.key("hosts"))
		return nil
	})
	// XINFO GROUPS of a stream not yet created is an error, not an empty
	// list; every other command's error is the scrape's.
	for _, c := range append(counts.cmds(), mem, cpu, hosts) {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return h, classify(err)
		}
	}
	if err := groups.Err(); err != nil && !noSuchKey(err) {
		return h, classify(err)
	}
	h.Retrying, h.Dead, h.Held = counts.retry.Val(), counts.dead.Val(), counts.held.Val()
	h.Depth = counts.ready.Val() + h.Retrying
	h.Head = counts.head()
	for _, g := range groups.Val() {
		h.Pending += g.Pending
	}
	info := redisha.ParseInfo(mem.Val())
	h.UsedMemory, h.MaxMemory = redisha.InfoInt(info, "used_memory"), redisha.InfoInt(info, "maxmemory")
	h.CPUSeconds = redisCPU(redisha.ParseInfo(cpu.Val()))
	var err error
	h.Hosts, err = q.hostHealth(ctx, hosts.Val())
	return h, err
}

// redisCPU is the CPU seconds of Redis's main thread in an INFO cpu
// reply, or of the whole process where there is no main thread's.
func redisCPU(info map[string]string) float64 {
	if _, ok := info["used_cpu_user_main_thread"]; ok {
		return redisha.InfoFloat(info, "used_cpu_user_main_thread") + redisha.InfoFloat(info, "used_cpu_sys_main_thread")
	}
	return redisha.InfoFloat(info, "used_cpu_user") + redisha.InfoFloat(info, "used_cpu_sys")
}

// hostHealth reads each host's heartbeat, drain flag and accounting.
func (q *Queue) hostHealth(ctx context.Context, names []string) ([]HostHealth, error) {
	slices.Sort(names)
	type cmds struct {
		hb, drain *redis.StringCmd
		inflight  *redis.IntCmd
	}
	cs := make([]cmds, len(names))
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cs[i] = cmds{p.Get(ctx, q.key("hb", n)), p.Get(ctx, q.key("drain", n)), p.SCard(ctx, q.key("inflight", n))}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, classify(err)
	}
	out := make([]HostHealth, len(names))
	for i, n := range names {
		hh := HostHealth{Host: n, Inflight: cs[i].inflight.Val()}
		if raw, err := cs[i].hb.Bytes(); err == nil {
			var hb Heartbeat
			// A heartbeat that does not parse is a host alive that says
			// nothing more.
			_ = json.Unmarshal(raw, &hb)
			hh.Alive, hh.Seen, hh.Sessions = true, hb.Seen, hb.Sessions
		}
		if v, err := cs[i].drain.Result(); err == nil {
			hh.Draining = true
			hh.DrainSince, _ = time.Parse(time.RFC3339, v)
		}
		out[i] = hh
	}
	return out, nil
}
