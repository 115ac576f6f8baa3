package queue

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"time"

	"github.com/redis/go-redis/v9"
)

// ChunkSize is the largest piece of a body a producer should hand over at
// once, and the piece readers fetch: a list element of a stored body is
// at most this long when the producer follows it. Redis is one thread;
// a command that carries a few chunks keeps its loop busy for
// microseconds, so small messages of other clients pass between the
// chunks of a big one.
//
// It is 16 bytes short of 64 KiB so that a chunk fills Redis's memory
// exactly: a list keeps an element this long as a listpack of its own,
// the element and 15 bytes of framing (a 6-byte header, 5 bytes of
// encoding and length, 3 of back-length, the end byte), 65,535 bytes
// in jemalloc's 64 KiB size class. A chunk of a whole 64 KiB is one
// size class up, 80 KiB, and every stored body took 25% more of
// maxmemory than its bytes (docs/redis.md, "Capacity").
const ChunkSize = 64<<10 - 16

// Spool is the body of a message being written to Redis while it arrives,
// before its record is committed by Enqueue. The chunks go to a temporary
// key, {NAME}:spool:ID, whose expiry is pushed forward with every Append:
// a producer that dies leaves nothing behind for longer than that.
// Enqueue moves the key into place with the record in one step; Abort
// deletes it. A Spool is used by one goroutine.
type Spool struct {
	q      *Queue
	id     string
	key    string
	ttl    time.Duration
	chunks int64
	size   int64
	sum    hash.Hash
	failed error // a lost spool: unusable after it
	resume int   // pieces of a failed Append's chunks already stored
	joined bool  // holds the whole format 1 body, one string (joinSpool)
	prefix int   // bytes given to Prefix
}

// NewSpool starts the spooled body of queue id. ttl is how long the
// temporary key outlives the last Append; it must cover the time until the
// next Append or Enqueue.
func (q *Queue) NewSpool(id string, ttl time.Duration) *Spool {
	return &Spool{q: q, id: id, key: q.key("spool", id), ttl: ttl, sum: sha256.New()}
}

// Prefix counts p as the start of the client's data that the producer
// keeps out of the spool (see Message.Prefix): it goes into the dedup
// hash before what is appended. Call it before the first Append.
func (s *Spool) Prefix(p []byte) {
	s.sum.Write(p)
	s.prefix += len(p)
}

// Size is the number of bytes appended so far.
func (s *Spool) Size() int64 { return s.size }

// Append stores chunks at the end of the body and pushes the expiry
// forward. A chunk longer than ChunkSize is stored in pieces of
// ChunkSize, and no command carries more than a few of them. Each
// command's deadline grows with its bytes: the queue's timeout plus their
// size at MinRate. After a Transient error Append may be called again
// with the same chunks; after any other the spool is unusable: Abort it.
func (s *Spool) Append(ctx context.Context, chunks ...[]byte) error {
	if s.failed != nil {
		return s.failed
	}
	// A call after a transient failure skips the pieces that the failed
	// call stored before it failed.
	stored := s.resume
	skip := stored
	s.resume = 0
	var batch [][]byte
	n, done := 0, 0
	send := func() error {
		if err := s.push(ctx, batch, n); err != nil {
			s.resume = stored + done
			return err
		}
		done += len(batch)
		batch, n = batch[:0], 0
		return nil
	}
	for _, c := range chunks {
		for _, p := range chunked(c) {
			if skip > 0 {
				skip--
				continue
			}
			if n+len(p) > maxCommandBytes && len(batch) > 0 {
				if err := send(); err != nil {
					return err
				}
			}
			batch = append(batch, p)
			n += len(p)
		}
	}
	if len(batch) == 0 || n == 0 && s.chunks > 0 {
		return nil
	}
	return send()
}

// push appends chunks (n bytes in all) and pushes the expiry forward, in
// one transaction that carries the bytes straight into the list: no
// script sees them (a script would copy every byte into Lua and back
// before the list has it, and Redis's one thread pays for each copy).
//
// A try again after a lost reply must not store the chunks twice, so
// the transaction trims the list to the length the spool must have after
// this push: when the earlier try landed, its copy stays and this one's
// is cut off again (the same bytes, so which copy stays does not
// matter); when it did not, the trim removes nothing. RPUSH's reply, the
// length after the push, tells which: that length less the chunks pushed
// is the spool's length before, which is either what the producer sent
// before (the first try) or that plus these chunks (an earlier try
// landed). Any other length means the spool lost its beginning (it
// expired, or a failover lost writes that no replica had): it is
// deleted, and the producer answers 451. MULTI … EXEC runs as one step,
// and reaches the AOF and the replicas as one, so no reader sees the
// list between the push and the trim. A transient failure leaves the
// spool as it was, for the caller to try again.
func (s *Spool) push(ctx context.Context, chunks [][]byte, n int) error {
	ctx, cancel := s.q.sizedCtx(ctx, n)
	defer cancel()
	add := int64(len(chunks))
	want := s.chunks + add
	args := make([]any, len(chunks))
	for i, c := range chunks {
		args[i] = c
	}
	var rpush *redis.IntCmd
	cmds, err := s.q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rpush = p.RPush(ctx, s.key, args...)
		p.LTrim(ctx, s.key, 0, want-1)
		p.PExpire(ctx, s.key, s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.id, classify(execErr(cmds, err)))
	}
	if before := rpush.Val() - add; before != s.chunks && before != want {
		s.failed = fmt.Errorf("spool %s: %w", s.id, &Error{Kind: Unavailable,
			Err: fmt.Errorf("%w: spool held %d chunks, expected %d", ErrSpoolLost, before, s.chunks)})
		// What is there is of no use; if this DEL fails, Abort tries
		// again, and the expiry removes it in any case.
		s.q.rdb.Del(ctx, s.key)
		return s.failed
	}
	for _, c := range chunks {
		s.sum.Write(c)
	}
	s.chunks = want
	s.size += int64(n)
	return nil
}

// Commit is Enqueue of m with s as m.Spool: m's data is what was
// appended to s, then m.Data or m.Chunks.
func (s *Spool) Commit(ctx context.Context, m *Message) (Result, error) {
	m.Spool = s
	return s.q.Enqueue(ctx, m)
}

// Abort deletes what was spooled. DEL is allowed when Redis is out of
// memory, so an OOM in the middle of a body leaves nothing behind.
func (s *Spool) Abort(ctx context.Context) error {
	if s.chunks == 0 && s.failed == nil {
		return nil
	}
	ctx, cancel := s.q.ctx(ctx)
	defer cancel()
	if err := s.q.rdb.Del(ctx, s.key).Err(); err != nil {
		return fmt.Errorf("abort spool %s: %w", s.id, classify(err))
	}
	s.chunks = 0
	return nil
}

// sizedCtx bounds one command that carries n bytes (see sizedTimeout).
func (q *Queue) sizedCtx(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, q.opt.sizedTimeout(n))
}

// sizedTimeout is the time one command that carries n bytes may take: the
// queue's timeout plus n at MinRate, so that a big, healthy write is never
// cut short by a deadline meant for a small one.
func (o Options) sizedTimeout(n int) time.Duration {
	return o.Timeout + time.Duration(float64(n)/float64(o.MinRate)*float64(time.Second))
}
