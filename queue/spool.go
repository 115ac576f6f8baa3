package queue

import (
	"context"
	"crypto/sha256"
	"errors"
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
const ChunkSize = 64 << 10

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
	failed error // the first Append error: the spool is unusable after it
}

// NewSpool starts the spooled body of queue id. ttl is how long the
// temporary key outlives the last Append; it must cover the time until the
// next Append or Enqueue.
func (q *Queue) NewSpool(id string, ttl time.Duration) *Spool {
	return &Spool{q: q, id: id, key: q.key("spool", id), ttl: ttl, sum: sha256.New()}
}

// Size is the number of bytes appended so far.
func (s *Spool) Size() int64 { return s.size }

// errSpoolLost is the cause when the temporary key is gone between two
// Appends (it expired, or someone deleted it).
var errSpoolLost = errors.New("spooled body expired before it was complete")

// Append stores chunks at the end of the body and pushes the expiry
// forward. A chunk longer than ChunkSize is stored in pieces of
// ChunkSize, and no command carries more than a few of them. Each
// command's deadline grows with its bytes: the queue's timeout plus their
// size at MinRate. After an error the spool is unusable; Abort it.
func (s *Spool) Append(ctx context.Context, chunks ...[]byte) error {
	if s.failed != nil {
		return s.failed
	}
	var batch [][]byte
	n := 0
	for _, c := range chunks {
		for _, p := range chunked(c) {
			if n+len(p) > maxCommandBytes && len(batch) > 0 {
				if err := s.push(ctx, batch, n); err != nil {
					return err
				}
				batch, n = batch[:0], 0
			}
			batch = append(batch, p)
			n += len(p)
		}
	}
	if len(batch) == 0 || n == 0 && s.chunks > 0 {
		return nil
	}
	return s.push(ctx, batch, n)
}

// push is one RPUSH of chunks (n bytes in all) and the new expiry.
func (s *Spool) push(ctx context.Context, chunks [][]byte, n int) error {
	args := make([]any, len(chunks))
	for i, c := range chunks {
		args[i] = c
	}
	ctx, cancel := s.q.sizedCtx(ctx, n)
	defer cancel()
	var push *redis.IntCmd
	_, err := s.q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		push = p.RPush(ctx, s.key, args...)
		p.PExpire(ctx, s.key, s.ttl)
		return nil
	})
	if err == nil && push.Val() != s.chunks+int64(len(chunks)) {
		// The key expired between two appends and RPUSH made a new one
		// without the beginning: delete that fragment.
		s.q.rdb.Del(ctx, s.key)
		err = &Error{Kind: Unavailable, Err: errSpoolLost}
	}
	if err != nil {
		s.failed = fmt.Errorf("spool %s: %w", s.id, classify(err))
		return s.failed
	}
	for _, c := range chunks {
		s.sum.Write(c)
	}
	s.chunks += int64(len(chunks))
	s.size += int64(n)
	return nil
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

// sizedCtx bounds one command that carries n bytes: the queue's timeout
// plus n at MinRate, so that a big, healthy write is never cut short by a
// deadline meant for a small one.
func (q *Queue) sizedCtx(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	d := q.opt.Timeout + time.Duration(float64(n)/float64(q.opt.MinRate)*float64(time.Second))
	return context.WithTimeout(ctx, d)
}
