package queue

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"time"
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
	failed error // a lost spool: unusable after it
	resume int   // pieces of a failed Append's chunks already stored
	joined bool  // holds the whole format 1 body, one string (joinSpool)
}

// NewSpool starts the spooled body of queue id. ttl is how long the
// temporary key outlives the last Append; it must cover the time until the
// next Append or Enqueue.
func (q *Queue) NewSpool(id string, ttl time.Duration) *Spool {
	return &Spool{q: q, id: id, key: q.key("spool", id), ttl: ttl, sum: sha256.New()}
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

// appendScript appends chunks to a spool that has exactly as many as the
// producer sent before, and pushes its expiry forward. That makes an
// Append idempotent: when the reply to an earlier try was lost, the
// chunks are found there already and not added twice. A spool with any
// other count lost its beginning (it expired, or a failover lost writes
// that no replica had): it is deleted, and the producer answers 451.
var appendScript = newScript[spoolKey, appendArgs](`#!lua
local n = redis.call('LLEN', KEYS[1])
local before = tonumber(ARGV[1])
local add = #ARGV - 2
if n == before + add and add > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return n
end
if n ~= before then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('SPOOLLOST spool holds ' .. n .. ' chunks, expected ' .. before)
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n + add
`)

type spoolKey struct{ spool string }

func (k spoolKey) keys() []string { return []string{k.spool} }

type appendArgs struct {
	before int64 // chunks in the spool before these
	ttlMS  int64
	chunks [][]byte
}

func (a appendArgs) args() []any {
	out := make([]any, 0, 2+len(a.chunks))
	out = append(out, a.before, a.ttlMS)
	for _, c := range a.chunks {
		out = append(out, c)
	}
	return out
}

// push appends chunks (n bytes in all) and pushes the expiry forward. A
// transient failure leaves the spool as it was, for the caller to try
// again; a lost spool makes it unusable.
func (s *Spool) push(ctx context.Context, chunks [][]byte, n int) error {
	ctx, cancel := s.q.sizedCtx(ctx, n)
	defer cancel()
	a := appendArgs{before: s.chunks, ttlMS: s.ttl.Milliseconds(), chunks: chunks}
	if err := appendScript.run(ctx, s.q.rdb, spoolKey{s.key}, a).Err(); err != nil {
		err = fmt.Errorf("spool %s: %w", s.id, classify(err))
		if errors.Is(err, ErrSpoolLost) {
			s.failed = err
		}
		return err
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
