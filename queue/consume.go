package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/setting"
)

// The consumer side of the queue adds {NAME}:retry, {NAME}:wait:ID,
// {NAME}:done:ID, {NAME}:tries:ID and {NAME}:dead (see the "Keys" table
// of docs/redis.md, the one list of the keys).
//
// An entry is read from the stream with XREADGROUP into the pending list
// of one consumer, which holds it under a lease. A temporary failure moves
// the entry out of the stream into {NAME}:retry and {NAME}:wait:ID in one
// script, and a due entry moves back (a new stream entry, same fields) in
// one script, so at every moment a message is in exactly one of: the
// stream, the retry set, the dead-letter stream.

// ErrLeaseLost is returned when a consumer settles or renews an entry that
// is no longer pending to it: its lease ran out and another consumer took
// the entry over, or the entry is gone.
var ErrLeaseLost = errors.New("lease lost: the entry is no longer pending to this consumer")

// ErrSettled is the ErrLeaseLost of an acknowledgement, retry or dead
// letter whose entry has left the stream: it was settled already, by an
// earlier try of the same call whose reply was lost, or by a consumer
// that took the entry over. A caller that tries a settlement again after
// a Transient failure takes it as done; on a first try it is a lease lost.
var ErrSettled = fmt.Errorf("%w (settled already)", ErrLeaseLost)

// ConsumerOptions tune a Consumer. Start from DefaultConsumerOptions:
// Consumer uses them as they are. The zero values said here are not
// defaults but derived from the other options.
type ConsumerOptions struct {
	// Group is the consumer group. Consumers in one group share the work;
	// every group gets every message.
	Group string
	// Name identifies this consumer in its group; it must be unique among
	// the running consumers. Empty: HOSTNAME-PID-RANDOM.
	Name string
	// Lease is how long an entry stays with a consumer that stops
	// renewing it (it crashed, or lost Redis) before another consumer
	// takes it over.
	Lease time.Duration
	// Block is the longest Fetch waits for a new entry. Never forever:
	// due retries and expired leases are looked at between waits.
	Block time.Duration
	// MaxAttempts is how many attempts a message gets before it is
	// dead-lettered.
	MaxAttempts int
	// RetryMin is the wait after the first failure; each further failure
	// doubles it up to RetryMax.
	RetryMin, RetryMax time.Duration
	// ReclaimInterval is how often Fetch looks for entries whose lease
	// expired. Zero: Lease/4.
	ReclaimInterval time.Duration
	// ForgetIdle is how long a consumer of the group that holds nothing
	// must have been silent before it is removed from the group (each
	// listd start adds a name). Zero: the longer of 1h and 10×Lease.
	ForgetIdle time.Duration
	// RememberAcks is how many of the queue ids it acknowledged last the
	// consumer remembers, to know a message that a failover brought back
	// (Delivery.AckedBefore; see recover.go).
	RememberAcks int
	// Program is the program and its version, announced with the record
	// formats the consumer reads (see announce.go).
	Program string
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// DefaultConsumerOptions are a consumer's defaults, each stated here
// alone. 30 attempts from 30s doubling up to 30m span about 13 hours:
// enough for a list server that is down for an afternoon. 100,000 queue
// ids remembered take about 10 MiB.
func DefaultConsumerOptions() ConsumerOptions {
	return ConsumerOptions{
		Group:        "listd",
		Lease:        time.Minute,
		Block:        time.Second,
		MaxAttempts:  30,
		RetryMin:     30 * time.Second,
		RetryMax:     30 * time.Minute,
		RememberAcks: 100_000,
	}
}

// Check reports each option Consumer cannot use, as a *setting.Error.
func (o *ConsumerOptions) Check() error {
	ck := setting.For(o)
	ck.Required(&o.Group)
	setting.Positive(ck, &o.Lease)
	if o.Block < time.Millisecond {
		ck.Add(&o.Block, "want 1ms or more (Redis would take 0 as forever)")
	}
	setting.Positive(ck, &o.MaxAttempts)
	setting.Positive(ck, &o.RetryMin)
	setting.AtLeast(ck, &o.RetryMax, &o.RetryMin)
	setting.NotNegative(ck, &o.ReclaimInterval)
	setting.NotNegative(ck, &o.ForgetIdle)
	setting.Positive(ck, &o.RememberAcks)
	return ck.Err()
}

// derived returns o with the zero options that derive from others set.
func (o ConsumerOptions) derived() ConsumerOptions {
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s-%d-%06x", host, os.Getpid(), rand.Uint32N(1<<24))
	}
	if o.ReclaimInterval == 0 {
		o.ReclaimInterval = o.Lease / 4
	}
	if o.ForgetIdle == 0 {
		o.ForgetIdle = max(time.Hour, 10*o.Lease)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Consumer takes entries off the queue for one member of a consumer
// group. It is safe for concurrent use.
type Consumer struct {
	q   *Queue
	opt ConsumerOptions

	mu          sync.Mutex
	group       bool // the group is known to exist
	lastReclaim time.Time
	cursor      string    // XAUTOCLAIM position
	announced   time.Time // the last announcement

	// See recover.go.
	held             map[string]bool // stream ids handed out and not settled yet
	settledMeanwhile map[string]bool // non-nil while takeBack reads
	suspect          bool            // a failure passed: read the own pending entries again
	backCursor       string          // takeBack's position in them
	acked            recentIDs       // queue ids acknowledged last

	acks Batcher[*ackReq] // see acks.go

	unconfirmedAcks, unconfirmedMarks, takenBack atomic.Int64
}

// Consumer returns a consumer of q. It does not contact Redis. opt must
// pass Check, which a command does with its other settings: Consumer
// panics otherwise, as time.NewTicker does for a duration it cannot use.
func (q *Queue) Consumer(opt ConsumerOptions) *Consumer {
	if err := opt.Check(); err != nil {
		panic(fmt.Sprintf("queue: Consumer: %v", err))
	}
	return &Consumer{q: q, opt: opt.derived(), cursor: "0-0", backCursor: "0", held: make(map[string]bool)}
}

// Name is the consumer's name in its group.
func (c *Consumer) Name() string { return c.opt.Name }

// Options returns the consumer's options, with those derived from
// others set.
func (c *Consumer) Options() ConsumerOptions { return c.opt }

// Fetch returns up to n deliveries: due retries are moved back into the
// stream first; after a failure that passed (a failover, a restart), the
// consumer's own pending entries that none of its deliveries holds are
// taken back; then entries whose lease expired are taken over; then new
// entries are read, waiting at most Block for one. It returns no
// deliveries and no error when there was nothing to do. After an error,
// call it again (with a pause): it picks up where Redis left off.
func (c *Consumer) Fetch(ctx context.Context, n int) ([]*Delivery, error) {
	if n <= 0 {
		return nil, nil
	}
	ds, err := c.fetch(ctx, n)
	c.noteErr(err)
	return ds, err
}

func (c *Consumer) fetch(ctx context.Context, n int) ([]*Delivery, error) {
	if err := c.ensureGroup(ctx); err != nil {
		return nil, err
	}
	c.announce(ctx)
	if _, err := c.promote(ctx, 100); err != nil {
		return nil, err
	}
	ds, err := c.takeBack(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(ds) < n {
		more, err := c.reclaim(ctx, n-len(ds))
		if err != nil {
			return ds, err
		}
		ds = append(ds, more...)
	}
	if len(ds) < n {
		block := c.opt.Block
		if len(ds) > 0 {
			block = -1 // top up without waiting
		}
		more, err := c.read(ctx, n-len(ds), block)
		if err != nil {
			return ds, err
		}
		ds = append(ds, more...)
	}
	return ds, nil
}

// ensureGroup creates the consumer group once. It starts at the
// beginning of the stream ("0", not "$"), so that entries queued before
// the first consumer ever ran are consumed too.
func (c *Consumer) ensureGroup(ctx context.Context) error {
	c.mu.Lock()
	ok := c.group
	c.mu.Unlock()
	if ok {
		return nil
	}
	ctx, cancel := c.q.ctx(ctx)
	defer cancel()
	err := c.q.rdb.XGroupCreateMkStream(ctx, c.q.key("stream"), c.opt.Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s: %w", c.opt.Group, classify(err))
	}
	c.mu.Lock()
	c.group = true
	c.mu.Unlock()
	return nil
}

// groupLost notes that Redis no longer knows the group (NOGROUP: its data
// was lost or flushed), so that the next Fetch creates it again.
func (c *Consumer) groupLost(err error) {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		c.mu.Lock()
		c.group = false
		c.mu.Unlock()
	}
}

// promoteScript moves due entries from the retry set back into the
// stream. ZREM decides which caller moves an entry, so two consumers
// promoting at once add it once.
var promoteScript = newScript[promoteKeys, promoteArgs](`
local n = 0
for i, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local f = redis.call('HGETALL', KEYS[i+2])
    if #f > 0 then
      redis.call('XADD', KEYS[2], '*', unpack(f))
      n = n + 1
    end
    redis.call('DEL', KEYS[i+2])
  end
end
return n
`)

// promoteKeys are the retry set, the stream, then the wait key of each
// id of promoteArgs, in the same order.
type promoteKeys struct {
	retry, stream string
	waits         []string
}

func (k promoteKeys) keys() []string { return append([]string{k.retry, k.stream}, k.waits...) }

// promoteArgs are the queue ids to move.
type promoteArgs []string

func (a promoteArgs) args() []any {
	out := make([]any, len(a))
	for i, id := range a {
		out[i] = id
	}
	return out
}

// promoteCall builds promoteScript's keys and arguments for ids, so that
// each wait key stands where the script looks for it.
func (q *Queue) promoteCall(ids []string) (promoteKeys, promoteArgs) {
	k := promoteKeys{retry: q.key("retry"), stream: q.key("stream"), waits: make([]string, len(ids))}
	for i, id := range ids {
		k.waits[i] = q.key("wait", id)
	}
	return k, promoteArgs(ids)
}

// promote moves up to max due retries back into the stream and returns
// how many it moved.
func (c *Consumer) promote(ctx context.Context, max int64) (int, error) {
	ctx, cancel := c.q.ctx(ctx)
	defer cancel()
	now := c.opt.Now().UnixMilli()
	ids, err := c.q.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: c.q.key("retry"), Start: "-inf", Stop: now, ByScore: true, Count: max,
	}).Result()
	if err != nil || len(ids) == 0 {
		return 0, classify(err)
	}
	keys, args := c.q.promoteCall(ids)
	n, err := promoteScript.run(ctx, c.q.rdb, keys, args).Int()
	if err != nil {
		return 0, fmt.Errorf("move due retries into the stream: %w", classify(err))
	}
	return n, nil
}

// reclaim takes over up to n entries whose lease expired, when the last
// look is ReclaimInterval ago.
func (c *Consumer) reclaim(ctx context.Context, n int) ([]*Delivery, error) {
	c.mu.Lock()
	now := c.opt.Now()
	if now.Sub(c.lastReclaim) < c.opt.ReclaimInterval {
		c.mu.Unlock()
		return nil, nil
	}
	cursor := c.cursor
	c.mu.Unlock()

	ctx, cancel := c.q.ctx(ctx)
	defer cancel()
	msgs, next, deleted, err := c.q.rdb.XAutoClaimWithDeleted(ctx, &redis.XAutoClaimArgs{
		Stream: c.q.key("stream"), Group: c.opt.Group, Consumer: c.opt.Name,
		MinIdle: c.opt.Lease, Start: cursor, Count: int64(n),
	}).Result()
	if err != nil {
		c.groupLost(err)
		return nil, fmt.Errorf("reclaim expired leases: %w", classify(err))
	}
	c.mu.Lock()
	c.cursor = next
	if next == "0-0" {
		// A full pass is done: wait for the next interval.
		c.lastReclaim = now
	}
	c.mu.Unlock()
	if next == "0-0" {
		c.forgetIdleConsumers(ctx)
		c.forgetLeft(ctx)
	}
	// Redis 7 already dropped the deleted entries from the pending list;
	// XACK makes sure on any version.
	if err := c.ackDeleted(ctx, deleted); err != nil {
		return nil, err
	}
	return c.begin(ctx, msgs, fromReclaim)
}

// ackDeleted acknowledges pending entries whose stream data is gone
// (deleted by hand: our own scripts delete and acknowledge together).
// Their bodies cannot be found without the entry.
func (c *Consumer) ackDeleted(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := c.q.rdb.XAck(ctx, c.q.key("stream"), c.opt.Group, ids...).Err(); err != nil {
		return fmt.Errorf("acknowledge deleted entries %v: %w", ids, classify(err))
	}
	return nil
}

// forgetIdleConsumers removes from the group the consumers that hold
// nothing and have not been seen for a long time (every listd start adds
// a name). A live consumer that is removed is added back by its next read.
func (c *Consumer) forgetIdleConsumers(ctx context.Context) {
	cs, err := c.q.rdb.XInfoConsumers(ctx, c.q.key("stream"), c.opt.Group).Result()
	if err != nil {
		return
	}
	members := map[string]bool{}
	for _, x := range cs {
		members[x.Name] = true
		if x.Name != c.opt.Name && x.Pending == 0 && x.Idle > c.opt.ForgetIdle {
			forgetScript.run(ctx, c.q.rdb, streamKey{c.q.key("stream")}, forgetArgs{group: c.opt.Group, consumer: x.Name})
			delete(members, x.Name)
		}
	}
	c.forgetAnnouncements(ctx, members)
}

// forgetScript deletes a consumer only if it holds nothing at that moment:
// deleting a consumer drops its pending entries, which would then never
// be delivered.
var forgetScript = newScript[streamKey, forgetArgs](`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`)

type forgetArgs struct{ group, consumer string }

func (a forgetArgs) args() []any { return []any{a.group, a.consumer} }

// read reads up to n new entries, waiting at most block (no wait when
// block < 0).
func (c *Consumer) read(ctx context.Context, n int, block time.Duration) ([]*Delivery, error) {
	// The command timeout covers the wait plus the usual budget.
	rctx, cancel := context.WithTimeout(ctx, max(block, 0)+c.q.opt.Timeout)
	defer cancel()
	res, err := c.q.rdb.XReadGroup(rctx, &redis.XReadGroupArgs{
		Group: c.opt.Group, Consumer: c.opt.Name,
		Streams: []string{c.q.key("stream"), ">"},
		Count:   int64(n), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.groupLost(err)
		return nil, fmt.Errorf("read the stream: %w", classify(err))
	}
	var msgs []redis.XMessage
	for _, s := range res {
		msgs = append(msgs, s.Messages...)
	}
	return c.begin(rctx, msgs, fromStream)
}

// Where begin's entries come from.
type entrySource int

const (
	fromStream  entrySource = iota // new entries (XREADGROUP >)
	fromReclaim                    // leases that expired (XAUTOCLAIM)
	fromOwnList                    // the consumer's own pending entries (takeBack)
)

// begin loads what a delivery needs: the body, the recipients settled by
// earlier attempts and the earlier attempts themselves. A reclaimed entry
// gets an attempt recorded for the consumer that lost it. Of the
// consumer's own pending entries, those a delivery of it holds are left
// out; any other entry is fair game, even one of its own deliveries
// holds (a lease that expired, a group created again).
func (c *Consumer) begin(ctx context.Context, msgs []redis.XMessage, from entrySource) ([]*Delivery, error) {
	reclaimed := from == fromReclaim
	msgs = c.hold(msgs, from == fromOwnList)
	if len(msgs) == 0 {
		return nil, nil
	}
	ds, err := c.load(ctx, msgs, reclaimed)
	if err != nil {
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		c.unhold(ids...)
		return nil, err
	}
	return ds, nil
}

// load makes the deliveries of msgs.
func (c *Consumer) load(ctx context.Context, msgs []redis.XMessage, reclaimed bool) ([]*Delivery, error) {
	ds := make([]*Delivery, len(msgs))
	for i, m := range msgs {
		d := &Delivery{c: c, StreamID: m.ID, Started: c.opt.Now()}
		d.ID, _ = m.Values["id"].(string)
		d.Record, d.decodeErr = decodeRecord(m.Values)
		d.version = entryVersion(m.Values)
		if d.decodeErr == nil {
			d.ID = d.Record.ID
		} else {
			// Still find the MX host if the JSON has one, so that
			// dead-lettering the entry ends the host's accounting.
			var h struct{ Host string }
			raw, _ := m.Values["rec"].(string)
			if json.Unmarshal([]byte(raw), &h) == nil {
				d.rawHost = h.Host
			}
		}
		ds[i] = d
	}
	c.mu.Lock()
	for _, d := range ds {
		d.ackedBefore = c.acked.has(d.ID)
	}
	c.mu.Unlock()
	type cmds struct {
		body  bodyCmds
		done  *redis.MapStringStringCmd
		tries *redis.MapStringStringCmd
		left  *redis.IntCmd // reclaimed: the entry was left, not lost
	}
	cs := make([]cmds, len(msgs))
	_, err := c.q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range ds {
			if d.Record != nil {
				cs[i].body = c.q.queueBodyFetch(ctx, p, d.ID, d.version)
			}
			cs[i].done, cs[i].tries = p.HGetAll(ctx, c.q.key("done", d.ID)), p.HGetAll(ctx, c.q.key("tries", d.ID))
			if reclaimed && !d.TooNew() {
				cs[i].left = p.HDel(ctx, c.q.key("left"), d.StreamID)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load bodies: %w", classify(err))
	}
	for i, d := range ds {
		if d.Record != nil {
			b, ok := cs[i].body.result(c.q, d.ID, d.version, d.Record.Size)
			d.body, d.bodyMissing = b, !ok
		}
		d.settled = cs[i].done.Val()
		d.Attempts = decodeAttempts(cs[i].tries.Val())
		if reclaimed && !d.TooNew() && cs[i].left.Val() == 0 {
			a := Attempt{N: len(d.Attempts) + 1, End: d.Started,
				Error: "no result: the consumer's lease expired (it crashed, hung or lost Redis)"}
			if err := c.q.rdb.HSet(ctx, c.q.key("tries", d.ID), a.N, a.encode()).Err(); err != nil {
				return nil, fmt.Errorf("record lost attempt of %s: %w", d.ID, classify(err))
			}
			d.Attempts = append(d.Attempts, a)
		}
		d.Attempt = len(d.Attempts) + 1
	}
	return ds, nil
}

// backoff is the wait before the attempt after attempt n (1-based):
// RetryMin doubled per failure, capped at RetryMax, with ±10% jitter so
// that messages that failed together do not come back together.
func (c *Consumer) backoff(n int) time.Duration {
	return backoff(c.opt.RetryMin, c.opt.RetryMax, n, rand.Float64())
}

// backoff is the pure part of (*Consumer).backoff; r in [0, 1] picks the
// jitter.
func backoff(lo, hi time.Duration, n int, r float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - d/10 + time.Duration(float64(d/5)*r)
}
