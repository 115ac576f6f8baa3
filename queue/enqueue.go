package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/address"
)

// Message is what a producer hands to Enqueue.
type Message struct {
	// Record describes the message. Record.ID must be set (NewID);
	// Record.Size is filled in by Enqueue.
	Record *Record
	// Header is what the producer prepends to the client's data (its
	// Received and Authentication-Results headers). It differs between
	// MX hosts and is therefore not part of the dedup hash.
	Header []byte
	// Spool, when not nil, holds the beginning of the client's data,
	// already written to Redis while it arrived.
	Spool *Spool
	// Data is the message as the client sent it (after the producer's
	// deterministic edits, such as removing forged Authentication-Results),
	// or the rest of it after what Spool holds.
	Data []byte
	// Chunks, when not nil, is the data in pieces, instead of Data. Each
	// piece is stored as it is (split at ChunkSize), without joining.
	Chunks [][]byte
	// Prefix, when not nil, is the beginning of the client's data that
	// the producer kept out of Spool and Data, to store it changed at the
	// end of Header (a header section that content filters edited at the
	// end of data). It counts for the dedup hash as the start of the
	// client's data, as it arrived, and is not stored itself. With a
	// Spool, it must have been given to Spool.Prefix before the first
	// Append.
	Prefix []byte
	// HoldReason, when not empty, queues the message held (a content
	// filter's quarantine): in the hold stream, which no consumer reads,
	// with this reason, until ReleaseHeld puts it into the queue or
	// PurgeHeld deletes it. The dedup key is set as for any message.
	HoldReason string
}

// Result is the outcome of a successful Enqueue.
type Result struct {
	// ID is the queue id the message is stored under. For a duplicate it
	// is the id of the copy queued first, not Record.ID.
	ID string
	// Duplicate is set when the same message was already queued within
	// the dedup window, under another id; nothing was written. A call
	// again after a lost reply finds its own id: that is no duplicate.
	Duplicate bool
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new queue id: 48 bits of milliseconds then 72 random
// bits, 24 characters of Crockford base32 that sort by time.
func NewID(now time.Time) string {
	var b [15]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return idEncoding.EncodeToString(b[:])
}

// DedupHash is the hash that identifies the same message sent twice: the
// envelope sender, the sorted recipients and the client's data. The
// addresses are taken in address.Fold's form, as the registry compares
// them: "Post@X" and "post@x" are one recipient, "JÜRGEN@x" and
// "jürgen@x" two. Versions before the address package lowered them with
// strings.ToLower, which gives the same key for every address in ASCII
// and for those whose non-ASCII letters are all lower case already; an
// address with a non-ASCII upper-case letter (É, Ü, U+0130, U+212A
// KELVIN SIGN) gets another key than it did there (see CHANGELOG.md).
func DedupHash(from string, rcpts []string, data []byte) string {
	body := sha256.Sum256(data)
	return dedupHash(from, rcpts, body[:])
}

// dedupHash is DedupHash with the data's SHA-256 already computed.
func dedupHash(from string, rcpts []string, bodySum []byte) string {
	rs := make([]string, len(rcpts))
	for i, r := range rcpts {
		rs[i] = address.Fold(r)
	}
	slices.Sort(rs)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", address.Fold(from), strings.Join(rs, "\x00"))
	h.Write(bodySum)
	return hex.EncodeToString(h.Sum(nil))
}

// enqueueScript commits a message: the body (moved into place from its
// spool, or written here), the MX host's header as the body's first
// element, the stream entry, the dedup key and the per-host accounting, in
// one step. The shebang makes Redis refuse the whole script with OOM
// before it starts when maxmemory is reached, instead of failing on a
// write in the middle. A duplicate deletes the spool and writes nothing
// but the dedup key's own expiry, unchanged: that write comes after the
// original's in the replication stream, so a WAIT after it returns only
// once the replicas have the original too (the same message may come
// back through another MX host while its first copy is on no replica).
//
// RENAME keeps the spool's expiry, hence the PERSIST.
//
// Format 1 (ARGV[2]), written while a consumer that reads no other is
// live, stores the body as one string. A spooled one was joined into the
// spool key beforehand (see joinSpool) and is only renamed; any other
// comes whole, header and data, in ARGV[6].
//
// A message with a hold reason (ARGV[8]) goes into the hold stream
// (KEYS[7]) instead of the queue's, and not into the host's inflight set:
// it waits for an operator, not for a consumer, and must not keep its MX
// host from counting as drained.
var enqueueScript = newScript[enqueueKeys, enqueueArgs](`#!lua
local id = redis.call('GET', KEYS[4])
if id then
  redis.call('DEL', KEYS[2])
  local ttl = redis.call('PTTL', KEYS[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
  return {0, id}
end
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('SPOOLLOST spooled body of ' .. ARGV[1] .. ' is gone before the commit')
end
if ARGV[2] == '1' and ARGV[7] == '1' then
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('PERSIST', KEYS[3])
elseif ARGV[2] == '1' then
  redis.call('SET', KEYS[3], ARGV[6])
elseif ARGV[7] == '1' then
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('PERSIST', KEYS[3])
  redis.call('LPUSH', KEYS[3], ARGV[6])
  if #ARGV > 9 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 10)) end
else
  redis.call('RPUSH', KEYS[3], ARGV[6], unpack(ARGV, 10))
end
if ARGV[8] == '' then
  redis.call('XADD', KEYS[1], '*', 'v', ARGV[2], 'id', ARGV[1], 'rec', ARGV[3])
  redis.call('SADD', KEYS[5], ARGV[1])
else
  redis.call('XADD', KEYS[7], '*', 'v', ARGV[2], 'id', ARGV[1], 'rec', ARGV[3], 'reason', ARGV[8], 'held_at', ARGV[9])
end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4])
redis.call('SADD', KEYS[6], ARGV[5])
return {1, ARGV[1]}
`)

// enqueueKeys and enqueueArgs are enqueueScript's KEYS and ARGV.
type enqueueKeys struct{ stream, spool, body, dedup, inflight, hosts, held string }

func (k enqueueKeys) keys() []string {
	return []string{k.stream, k.spool, k.body, k.dedup, k.inflight, k.hosts, k.held}
}

type enqueueArgs struct {
	id      string
	version int // the record format
	rec     []byte
	dedupMS int64
	host    string
	header  []byte
	spooled bool
	hold    string   // the hold reason; empty: queued for the consumers
	heldAt  int64    // when it was held, Unix milliseconds
	tail    [][]byte // chunks after the spooled ones
}

func (a enqueueArgs) args() []any {
	spooled := "0"
	if a.spooled {
		spooled = "1"
	}
	out := make([]any, 0, 9+len(a.tail))
	out = append(out, a.id, a.version, a.rec, a.dedupMS, a.host, a.header, spooled, a.hold, a.heldAt)
	for _, c := range a.tail {
		out = append(out, c)
	}
	return out
}

// Enqueue stores m durably, or returns an *Error. See the package doc for
// what durably means. Data of more than a few chunks is spooled first
// (see Spool), so that no command carries more than a few chunks.
//
// After a Transient error the caller may call Enqueue again with the same
// m, as often as it likes: when an earlier call was committed after all
// (its reply lost), the dedup key finds it and nothing is queued twice.
// m.Spool is the caller's: Enqueue appends to it and leaves it for the
// caller to Abort when it gives up; a spool Enqueue makes itself is
// deleted when the call fails.
func (q *Queue) Enqueue(ctx context.Context, m *Message) (Result, error) {
	r := m.Record
	if r == nil || r.ID == "" || r.Host == "" {
		return Result{}, fmt.Errorf("enqueue: record needs an id and a host")
	}
	tail := chunked(m.Data)
	if m.Chunks != nil {
		tail = tail[:0]
		for _, c := range m.Chunks {
			if len(c) > 0 {
				tail = append(tail, chunked(c)...)
			}
		}
	}
	sp, own := m.Spool, false
	if bytesOf(tail) > maxCommandBytes {
		if sp == nil {
			sp, own = q.NewSpool(r.ID, q.opt.Timeout+time.Minute), true
			sp.Prefix(m.Prefix)
		}
		n := len(tail) - 1
		if err := sp.Append(ctx, tail[:n]...); err != nil {
			if own {
				q.abort(sp)
			}
			return Result{}, fmt.Errorf("enqueue %s: %w", r.ID, err)
		}
		tail = tail[n:]
		if !own {
			// What is spooled is the caller's spool's now: a call again
			// must not append it twice.
			m.Data, m.Chunks = nil, tail
		}
	}
	res, err := q.commitMessage(ctx, m, sp, tail)
	if err != nil {
		if own {
			q.abort(sp)
		}
		return Result{}, fmt.Errorf("enqueue %s: %w", r.ID, err)
	}
	return res, nil
}

// commitMessage builds m's record and commits it with the spooled part
// in sp (nil when nothing is spooled) and tail.
func (q *Queue) commitMessage(ctx context.Context, m *Message, sp *Spool, tail [][]byte) (Result, error) {
	r := m.Record
	spooled := sp != nil && sp.chunks > 0
	h, size := sha256.New(), int64(len(m.Header))
	if spooled {
		// The spool's hash goes on with the tail: hash a copy of it, so
		// that a call again starts from the spool's state.
		h, size = cloneHash(sp.sum), size+sp.size
		if sp.prefix != len(m.Prefix) {
			return Result{}, fmt.Errorf("spool of %s hashed a prefix of %d bytes, the message has %d", r.ID, sp.prefix, len(m.Prefix))
		}
	} else {
		h.Write(m.Prefix)
	}
	for _, c := range tail {
		h.Write(c)
	}
	sum := h.Sum(nil)
	r.Size = size + int64(bytesOf(tail))
	rec, err := encodeRecord(r)
	if err != nil {
		return Result{}, err
	}
	keys := enqueueKeys{
		stream:   q.key("stream"),
		spool:    q.key("spool", r.ID),
		body:     q.key("body", r.ID),
		dedup:    q.key("dedup", dedupHash(r.From, r.Recipients(), sum)),
		inflight: q.key("inflight", r.Host),
		hosts:    q.key("hosts"),
		held:     q.key("held"),
	}
	args := enqueueArgs{id: r.ID, version: q.WriteFormat(), rec: rec, dedupMS: q.opt.DedupWindow.Milliseconds(),
		host: r.Host, header: m.Header, spooled: spooled, tail: tail}
	if m.HoldReason != "" {
		args.hold, args.heldAt = m.HoldReason, time.Now().UnixMilli()
	}
	if spooled && sp.joined {
		args.version = 1 // a call again after the join: keep its format
	}
	if args.version == 1 {
		if args, err = q.format1(ctx, sp, args); err != nil {
			return Result{}, err
		}
	}
	res, err := q.commit(ctx, keys, args, len(args.header)+bytesOf(args.tail))
	if err != nil {
		return Result{}, err
	}
	if res.ID == r.ID {
		q.formats.written[args.version].Add(1)
	}
	// The id found under the dedup key is this message's own when an
	// earlier call committed it and its reply was lost.
	res.Duplicate = res.ID != r.ID
	return res, nil
}

// abort deletes a spool after a failed enqueue, on its own deadline: the
// enqueue's may be what ran out.
func (q *Queue) abort(sp *Spool) {
	sp.Abort(context.Background())
}

// commit runs enqueueScript, and WAIT when replicas must confirm.
func (q *Queue) commit(ctx context.Context, keys enqueueKeys, args enqueueArgs, n int) (Result, error) {
	ctx, cancel := q.sizedCtx(ctx, n)
	defer cancel()
	if q.opt.Replicas == 0 {
		return enqueueResult(enqueueScript.run(ctx, q.rdb, keys, args))
	}
	// WAIT counts the writes of its own connection: run both on one, in
	// one write, so that a message costs one round trip, not two. Redis
	// runs them in order: the WAIT covers the script's writes. A
	// duplicate writes too (see enqueueScript), so its WAIT covers the
	// original.
	conn := q.rdb.Conn()
	defer conn.Close()
	var script *redis.Cmd
	var wait *redis.Cmd
	send := func() {
		conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			script = enqueueScript.evalSha(ctx, p, keys, args)
			wait = p.Do(ctx, "WAIT", q.opt.Replicas, q.opt.ReplicaTimeout.Milliseconds())
			return nil
		})
	}
	send()
	if redis.HasErrorPrefix(script.Err(), "NOSCRIPT") {
		// A new primary after a failover lacks the script (SCRIPT LOAD
		// is not replicated); a pipeline cannot fall back to EVAL.
		if err := enqueueScript.load(ctx, conn).Err(); err != nil {
			return Result{}, classify(err)
		}
		send()
	}
	res, err := enqueueResult(script)
	if err != nil {
		return Result{}, err
	}
	if err := q.waited(wait); err != nil {
		return Result{}, err
	}
	return res, nil
}

// waited checks the reply of WAIT for Options.Replicas.
func (q *Queue) waited(w *redis.Cmd) error {
	n, err := w.Int64()
	if err != nil {
		return fmt.Errorf("wait for replicas: %w", classify(err))
	}
	if n < int64(q.opt.Replicas) {
		return fmt.Errorf("%d of %d replicas: %w", n, q.opt.Replicas, &Error{Kind: Unavailable, Err: errReplicas})
	}
	return nil
}

// chunked splits data into pieces of at most ChunkSize, without copying.
// Empty data is one empty piece: the body's list then still says how the
// message ends.
func chunked(data []byte) [][]byte {
	if len(data) <= ChunkSize {
		return [][]byte{data}
	}
	out := make([][]byte, 0, (len(data)+ChunkSize-1)/ChunkSize)
	for len(data) > 0 {
		n := min(len(data), ChunkSize)
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func bytesOf(chunks [][]byte) int {
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	return n
}

// enqueueResult reads the reply of enqueueScript: the id the message is
// queued under. Whether it is a duplicate is commitMessage's to say (an
// id found again may be the message's own).
func enqueueResult(cmd *redis.Cmd) (Result, error) {
	v, err := cmd.Slice()
	if err != nil {
		return Result{}, classify(err)
	}
	if len(v) != 2 {
		return Result{}, &Error{Kind: Unavailable, Err: fmt.Errorf("enqueue script returned %v", v)}
	}
	id, _ := v[1].(string)
	return Result{ID: id}, nil
}

// cloneHash copies a SHA-256 state.
func cloneHash(h hash.Hash) hash.Hash {
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("sha256 state: " + err.Error())
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		panic("sha256 state: " + err.Error())
	}
	return c
}
