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
	"sync"
	"time"
)

// Delivery is one attempt to deliver one queued message, held under a
// lease by the consumer that fetched it. Settle it exactly once with Ack,
// Retry, Dead or Release; keep the lease with Renew (or Hold) while the
// attempt runs.
type Delivery struct {
	// ID is the queue id.
	ID string
	// StreamID is the id of the stream entry (it changes on every retry).
	StreamID string
	// Record describes the message; nil when the entry could not be
	// decoded (Fetch returns such entries so that they can be
	// dead-lettered: see Err).
	Record *Record
	// Attempt is the number of this attempt, 1 for the first.
	Attempt int
	// Attempts are the earlier attempts, oldest first.
	Attempts []Attempt
	// Started is when this attempt was fetched.
	Started time.Time

	c           *Consumer
	decodeErr   error
	version     int // the record's format version
	body        *storedBody
	bodyMissing bool
	rawHost     string            // the host of a record that could not be decoded
	settled     map[string]string // recipient → "delivered" | "failed: …"
	ackedBefore bool
}

// AckedBefore reports whether this consumer acknowledged the message
// before (it remembers the last ConsumerOptions.RememberAcks): the entry
// is back because a failover lost the acknowledgement. Every recipient
// has the message; acknowledge it again rather than deliver it again.
func (d *Delivery) AckedBefore() bool { return d.ackedBefore }

// Attempt is one attempt at delivering a message, as kept for the dead
// letter and for mxq.
type Attempt struct {
	N        int       `json:"n"`
	Consumer string    `json:"consumer,omitempty"`
	Start    time.Time `json:"start,omitzero"`
	End      time.Time `json:"end"`
	Error    string    `json:"error"`
}

func (a Attempt) encode() string {
	b, _ := json.Marshal(a)
	return string(b)
}

func decodeAttempts(m map[string]string) []Attempt {
	out := make([]Attempt, 0, len(m))
	for k, v := range m {
		var a Attempt
		if json.Unmarshal([]byte(v), &a) != nil {
			a.Error = v
		}
		if a.N == 0 {
			a.N, _ = strconv.Atoi(k)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Attempt) int { return a.N - b.N })
	return out
}

// Body returns a reader of the message as stored: the MX host's header
// fields, then the client's data. It fetches the body from Redis a few
// chunks at a time as it is read, so that a big message is never held
// whole; each call starts at the beginning. A read fails with an *Error
// when Redis does, and with ErrBodyChanged when the body does not have
// the record's size (it was deleted while being read).
func (d *Delivery) Body() io.Reader {
	if d.body == nil {
		return strings.NewReader("")
	}
	return d.body.reader()
}

// Err reports why the entry cannot be delivered at all (its record is in
// a format this reader does not know, or its body is missing); such a
// delivery should be dead-lettered, unless it is TooNew: then it is left.
func (d *Delivery) Err() error {
	if d.decodeErr != nil {
		return fmt.Errorf("stream entry %s: %w", d.StreamID, d.decodeErr)
	}
	if d.bodyMissing {
		return fmt.Errorf("queue id %s: body missing", d.ID)
	}
	return nil
}

const (
	stateDelivered = "delivered"
	stateFailed    = "failed: "
)

// Pending returns the recipients that earlier attempts neither delivered
// nor rejected for good, in envelope order.
func (d *Delivery) Pending() []Recipient {
	if d.Record == nil {
		return nil
	}
	var out []Recipient
	for _, r := range d.Record.Rcpts {
		if _, ok := d.settled[r.Addr]; !ok {
			out = append(out, r)
		}
	}
	return out
}

// Rejected returns the recipients rejected for good, so far, with the
// reason.
func (d *Delivery) Rejected() map[string]string {
	out := map[string]string{}
	for r, s := range d.settled {
		if reason, ok := strings.CutPrefix(s, stateFailed); ok {
			out[r] = reason
		}
	}
	return out
}

// Delivered records that rcpt has the message, so that no later attempt
// delivers to it again. It is written at once, not at Ack: a consumer
// that dies after this call does not repeat rcpt.
func (d *Delivery) Delivered(ctx context.Context, rcpt string) error {
	return d.settle(ctx, rcpt, stateDelivered)
}

// Reject records that rcpt failed for good (a 5xx, no route): later
// attempts skip it, and the message is dead-lettered once no recipient is
// left pending.
func (d *Delivery) Reject(ctx context.Context, rcpt string, reason error) error {
	return d.settle(ctx, rcpt, stateFailed+reason.Error())
}

// markScript records a recipient's state in done:ID while the message
// is queued (its body exists: in the stream, waiting for a retry, or a
// dead letter) and answers 1; once it has been acknowledged it writes
// nothing and answers 0, so that a consumer whose lease ran out and that
// finishes late does not leave a done:ID behind that nothing deletes.
var markScript = newScript[markKeys, markArgs](`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

type markKeys struct{ body, done string }

func (k markKeys) keys() []string { return []string{k.body, k.done} }

type markArgs struct{ rcpt, state string }

func (a markArgs) args() []any { return []any{a.rcpt, a.state} }

func (d *Delivery) markKeys() markKeys {
	return markKeys{body: d.c.q.key("body", d.ID), done: d.c.q.key("done", d.ID)}
}

// settle records rcpt's state. With Options.Replicas it goes with the
// acknowledgements (acks.go), which wait for the replicas together. A
// message acknowledged meanwhile (by a consumer that took it over) needs
// no record: that is not an error.
func (d *Delivery) settle(ctx context.Context, rcpt, state string) error {
	var err error
	if d.c.q.opt.Replicas > 0 {
		err = d.c.mark(ctx, d, rcpt, state)
	} else {
		ctx, cancel := d.c.q.ctx(ctx)
		err = markScript.run(ctx, d.c.q.rdb, d.markKeys(), markArgs{rcpt, state}).Err()
		cancel()
	}
	if err != nil {
		err = classify(err)
		d.c.noteErr(err)
		return fmt.Errorf("record %s for %s: %w", strings.TrimSuffix(state, ": "), rcpt, err)
	}
	if d.settled == nil {
		d.settled = map[string]string{}
	}
	d.settled[rcpt] = state
	return nil
}

// ownerCheck is the first lines of every script that settles an entry:
// only the consumer it is pending to may settle it. Its KEYS[1] is the
// stream and its first ARGV are ownerArgs.
const ownerCheck = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
`

// settleCheck is ownerCheck for the scripts that settle an entry
// (acknowledgement, retry, dead letter), which all remove it from the
// stream: for an entry no longer in the stream the script answers 2,
// settled already (ErrSettled), rather than 0, the lease lost to a
// consumer that still holds it.
const settleCheck = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then
  if #redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3]) == 0 then return 2 end
  return 0
end
`

// ownerArgs are the first ARGV of every owner-checked script.
type ownerArgs struct{ group, consumer, streamID string }

func (o ownerArgs) args() []any { return []any{o.group, o.consumer, o.streamID} }

// owner is d's ownerArgs.
func (d *Delivery) owner() ownerArgs {
	return ownerArgs{group: d.c.opt.Group, consumer: d.c.opt.Name, streamID: d.StreamID}
}

// renewScript resets the entry's idle time, which is its lease, with
// XCLAIM … JUSTID from the consumer that owns it (JUSTID does not count
// as a new delivery).
var renewScript = newScript[streamKey, ownerArgs](ownerCheck + `
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
`)

// Renew extends the lease by Lease from now. It returns ErrLeaseLost when
// another consumer has taken the entry over.
func (d *Delivery) Renew(ctx context.Context) error {
	return runOwned(ctx, d, "renew lease", renewScript, streamKey{d.c.q.key("stream")}, d.owner())
}

// Hold renews the lease every Lease/3 until stop is first called. The returned
// context is cancelled when the lease is lost, so that the attempt stops
// rather than race the consumer that took over.
func (d *Delivery) Hold(ctx context.Context) (hctx context.Context, stop func()) {
	hctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d.c.opt.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-hctx.Done():
				return
			case <-t.C:
				if err := d.Renew(hctx); errors.Is(err, ErrLeaseLost) {
					cancel(err)
					return
				}
				// Other errors (Redis unreachable) are retried at the
				// next tick: while Redis is away nobody can take the
				// entry over either.
			}
		}
	}()
	// stop may be called more than once (a deferred stop after an
	// early one): only the first closes done.
	return hctx, sync.OnceFunc(func() { close(done); cancel(nil) })
}

// ackScript is the acknowledgement: pending list, stream entry, body,
// per-recipient state, attempts and the host's accounting go together.
var ackScript = newScript[ackKeys, ackArgs](settleCheck + `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[4], KEYS[5])
redis.call('SREM', KEYS[3], ARGV[4])
return 1
`)

// Ack acknowledges a delivered message: it leaves the queue for good.
// The acknowledgements of concurrent deliveries go to Redis together
// (see acks.go); each returns its own result. With Options.Replicas they
// also wait for the replicas; one they do not confirm in time is still
// acknowledged, and counted (Consumer.Stats).
func (d *Delivery) Ack(ctx context.Context) error {
	d.c.rememberAck(d.ID)
	defer d.c.unhold(d.StreamID)
	return d.c.ack(ctx, d)
}

type ackKeys struct{ stream, body, inflight, done, tries string }

func (k ackKeys) keys() []string { return []string{k.stream, k.body, k.inflight, k.done, k.tries} }

type ackArgs struct {
	owner ownerArgs
	id    string
}

func (a ackArgs) args() []any { return append(a.owner.args(), a.id) }

// ackKeys are the keys of ackScript for d.
func (d *Delivery) ackKeys() ackKeys {
	q := d.c.q
	return ackKeys{stream: q.key("stream"), body: q.key("body", d.ID), inflight: q.key("inflight", d.host()),
		done: q.key("done", d.ID), tries: q.key("tries", d.ID)}
}

// ackArgs are the arguments of ackScript for d.
func (d *Delivery) ackArgs() ackArgs { return ackArgs{owner: d.owner(), id: d.ID} }

func (d *Delivery) host() string {
	if d.Record == nil {
		return d.rawHost
	}
	return d.Record.Host
}

// retryScript moves the entry from the stream to the retry set: its
// fields into wait:ID, its due time into the retry set, the attempt into
// tries:ID, then XACK and XDEL.
var retryScript = newScript[retryKeys, retryArgs](settleCheck + `
local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if #e == 0 then return 0 end
redis.call('HSET', KEYS[4], ARGV[6], ARGV[7])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(e[1][2]))
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
`)

type retryKeys struct{ stream, retry, wait, tries string }

func (k retryKeys) keys() []string { return []string{k.stream, k.retry, k.wait, k.tries} }

type retryArgs struct {
	owner   ownerArgs
	id      string
	dueMS   int64
	attempt Attempt
}

func (a retryArgs) args() []any {
	return append(a.owner.args(), a.id, a.dueMS, a.attempt.N, a.attempt.encode())
}

// Retry records the failed attempt and schedules the next one after the
// back-off. When this was the last allowed attempt it dead-letters the
// message instead and reports dead.
func (d *Delivery) Retry(ctx context.Context, cause error) (dead bool, err error) {
	a := d.attempt(cause)
	if d.Attempt >= d.c.opt.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts; last error: %v", d.Attempt, cause)
		return true, d.dead(ctx, reason, a) // dead unholds the entry
	}
	defer d.c.unhold(d.StreamID)
	q := d.c.q
	due := d.c.opt.Now().Add(d.c.backoff(d.Attempt)).UnixMilli()
	keys := retryKeys{stream: q.key("stream"), retry: q.key("retry"), wait: q.key("wait", d.ID), tries: q.key("tries", d.ID)}
	return false, runOwned(ctx, d, "schedule retry", retryScript, keys, retryArgs{owner: d.owner(), id: d.ID, dueMS: due, attempt: a})
}

// Dead moves the message to the dead-letter stream with reason and every
// attempt's error (this one's is reason). The body and the recipients
// already delivered stay, for mxq dead retry.
func (d *Delivery) Dead(ctx context.Context, reason string) error {
	return d.dead(ctx, reason, d.attempt(errors.New(reason)))
}

func (d *Delivery) attempt(cause error) Attempt {
	msg := "unknown error"
	if cause != nil {
		msg = cause.Error()
	}
	return Attempt{N: d.Attempt, Consumer: d.c.opt.Name, Start: d.Started, End: d.c.opt.Now(), Error: msg}
}

// deadScript: the entry's fields plus reason, attempts and time go to the
// dead-letter stream; the entry leaves the stream and the host's
// accounting (the MX's part is done), tries:ID is folded into the dead
// letter.
var deadScript = newScript[deadKeys, deadArgs](settleCheck + `
local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if #e == 0 then return 0 end
local f = e[1][2]
table.insert(f, 'reason') table.insert(f, ARGV[5])
table.insert(f, 'attempts') table.insert(f, ARGV[6])
table.insert(f, 'dead_at') table.insert(f, ARGV[7])
redis.call('XADD', KEYS[2], '*', unpack(f))
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[4])
return 1
`)

type deadKeys struct{ stream, dead, inflight, tries string }

func (k deadKeys) keys() []string { return []string{k.stream, k.dead, k.inflight, k.tries} }

type deadArgs struct {
	owner    ownerArgs
	id       string
	reason   string
	attempts []byte // every Attempt, JSON
	nowMS    int64
}

func (a deadArgs) args() []any { return append(a.owner.args(), a.id, a.reason, a.attempts, a.nowMS) }

func (d *Delivery) dead(ctx context.Context, reason string, last Attempt) error {
	defer d.c.unhold(d.StreamID)
	q := d.c.q
	all, _ := json.Marshal(append(slices.Clone(d.Attempts), last))
	keys := deadKeys{stream: q.key("stream"), dead: q.key("dead"), inflight: q.key("inflight", d.host()), tries: q.key("tries", d.ID)}
	args := deadArgs{owner: d.owner(), id: d.ID, reason: reason, attempts: all, nowMS: d.c.opt.Now().UnixMilli()}
	return runOwned(ctx, d, "dead-letter", deadScript, keys, args)
}

// releaseScript hands the entry back at once: its idle time is set past
// the lease, so the next consumer to look takes it over.
var releaseScript = newScript[streamKey, releaseArgs](ownerCheck + `
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
return 1
`)

type releaseArgs struct {
	owner  ownerArgs
	idleMS int64
}

func (a releaseArgs) args() []any { return append(a.owner.args(), a.idleMS) }

// Release gives the entry up without counting a failure, for a consumer
// that stops: another consumer takes it over without waiting out the
// lease.
func (d *Delivery) Release(ctx context.Context) error {
	defer d.c.unhold(d.StreamID)
	args := releaseArgs{owner: d.owner(), idleMS: d.c.opt.Lease.Milliseconds() + 1}
	return runOwned(ctx, d, "release", releaseScript, streamKey{d.c.q.key("stream")}, args)
}

// runOwned runs one of the owner-checked scripts on d's entry.
func runOwned[K scriptKeys, A scriptArgs](ctx context.Context, d *Delivery, what string, s script[K, A], k K, a A) error {
	ctx, cancel := d.c.q.ctx(ctx)
	defer cancel()
	n, err := s.run(ctx, d.c.q.rdb, k, a).Int()
	return d.scriptResult(what, n, err)
}

// scriptResult turns an owner-checked script's reply into an error: 1
// done, 2 settled already (settleCheck: ErrSettled), 0 the lease lost.
func (d *Delivery) scriptResult(what string, n int, err error) error {
	if err != nil {
		d.c.groupLost(err)
		err = classify(err)
		d.c.noteErr(err)
		return fmt.Errorf("%s %s: %w", what, d.ID, err)
	}
	switch n {
	case 0:
		return fmt.Errorf("%s %s: %w", what, d.ID, ErrLeaseLost)
	case 2:
		return fmt.Errorf("%s %s: %w", what, d.ID, ErrSettled)
	}
	return nil
}
