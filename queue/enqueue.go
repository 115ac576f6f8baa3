package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	// Data is the message as the client sent it (after the producer's
	// deterministic edits, such as removing forged Authentication-Results).
	Data []byte
}

// Result is the outcome of a successful Enqueue.
type Result struct {
	// ID is the queue id the message is stored under. For a duplicate it
	// is the id of the copy queued first, not Record.ID.
	ID string
	// Duplicate is set when the same message was already queued within
	// the dedup window; nothing was written.
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
// envelope sender, the sorted recipients and the client's data.
func DedupHash(from string, rcpts []string, data []byte) string {
	rs := make([]string, len(rcpts))
	for i, r := range rcpts {
		rs[i] = strings.ToLower(r)
	}
	slices.Sort(rs)
	body := sha256.Sum256(data)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", strings.ToLower(from), strings.Join(rs, "\x00"))
	h.Write(body[:])
	return hex.EncodeToString(h.Sum(nil))
}

// joinBufs hold header and data joined for the SET. go-redis has written
// the argument to the socket when the command returns, so the buffer is
// free again then. Buffers past maxPooledJoin are left to the GC.
var joinBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledJoin = 1 << 20

func releaseJoin(b *[]byte) {
	if cap(*b) <= maxPooledJoin {
		*b = (*b)[:0]
		joinBufs.Put(b)
	}
}

// enqueueScript writes body, stream entry, dedup key and per-host
// accounting in one step. The shebang makes Redis refuse the whole script
// with OOM before it starts when maxmemory is reached, instead of failing
// on a write in the middle.
var enqueueScript = redis.NewScript(`#!lua
local id = redis.call('GET', KEYS[3])
if id then return {0, id} end
redis.call('SET', KEYS[2], ARGV[5])
redis.call('XADD', KEYS[1], '*', 'v', ARGV[2], 'id', ARGV[1], 'rec', ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[6])
return {1, ARGV[1]}
`)

// Enqueue stores m durably, or returns an *Error. See the package doc for
// what durably means and why a failed write is not retried.
func (q *Queue) Enqueue(ctx context.Context, m *Message) (Result, error) {
	r := m.Record
	if r == nil || r.ID == "" || r.Host == "" {
		return Result{}, fmt.Errorf("enqueue: record needs an id and a host")
	}
	r.Size = int64(len(m.Header) + len(m.Data))
	rec, err := encodeRecord(r)
	if err != nil {
		return Result{}, fmt.Errorf("enqueue %s: %w", r.ID, err)
	}
	keys := []string{
		q.key("stream"),
		q.key("body", r.ID),
		q.key("dedup", DedupHash(r.From, r.Recipients(), m.Data)),
		q.key("inflight", r.Host),
		q.key("hosts"),
	}
	// Header and data are joined here, in a pooled buffer, and stored
	// with one SET: an APPEND in the script costs Redis a reallocation
	// and a second command in the AOF, about a tenth of its CPU per
	// message.
	body := joinBufs.Get().(*[]byte)
	defer releaseJoin(body)
	*body = append(append((*body)[:0], m.Header...), m.Data...)
	args := []any{r.ID, FormatVersion, rec, q.opt.DedupWindow.Milliseconds(), *body, r.Host}

	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if q.opt.Replicas == 0 {
		res, err := q.runEnqueue(ctx, q.rdb, keys, args)
		if err != nil {
			return Result{}, fmt.Errorf("enqueue %s: %w", r.ID, err)
		}
		return res, nil
	}
	// WAIT counts the writes of its own connection: run both on one.
	conn := q.rdb.Conn()
	defer conn.Close()
	res, err := q.runEnqueue(ctx, conn, keys, args)
	if err != nil {
		return Result{}, fmt.Errorf("enqueue %s: %w", r.ID, err)
	}
	n, err := conn.Wait(ctx, q.opt.Replicas, q.opt.ReplicaTimeout).Result()
	if err != nil {
		return Result{}, fmt.Errorf("enqueue %s: wait for replicas: %w", r.ID, classify(err))
	}
	if n < int64(q.opt.Replicas) {
		return Result{}, fmt.Errorf("enqueue %s: %d of %d replicas: %w", r.ID, n, q.opt.Replicas, &Error{Kind: Unavailable, Err: errReplicas})
	}
	return res, nil
}

func (q *Queue) runEnqueue(ctx context.Context, c redis.Scripter, keys []string, args []any) (Result, error) {
	v, err := enqueueScript.Run(ctx, c, keys, args...).Slice()
	if err != nil {
		return Result{}, classify(err)
	}
	if len(v) != 2 {
		return Result{}, &Error{Kind: Unavailable, Err: fmt.Errorf("enqueue script returned %v", v)}
	}
	created, _ := v[0].(int64)
	id, _ := v[1].(string)
	return Result{ID: id, Duplicate: created == 0}, nil
}
