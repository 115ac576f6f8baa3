package queue

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
)

// A stored body is read a few chunks at a time, so that a reader holds at
// most maxCommandBytes of it whatever the message's size.
//
// Format 2 stores the body as a list: the MX host's header fields, then
// the client's data in chunks. Format 1 stored it as one string, header
// and data joined; it is read with GETRANGE in pieces of the same size.

// prefetchElems is how many list elements of a format 2 body are fetched
// with its stream entry: a small message's whole body, in the same round
// trip.
const prefetchElems = 4

// storedBody is where a body is and what was fetched of it up front.
type storedBody struct {
	q       *Queue
	key     string
	version int
	first   []string // fetched with the entry
	more    bool     // there may be more than first
	size    int64    // the length the record gives; -1 when unknown
}

// bodyCmds are the commands that fetch the start of a body in a pipeline.
type bodyCmds struct {
	list   *redis.StringSliceCmd // format 2
	head   *redis.StringCmd      // format 1: GETRANGE
	exists *redis.IntCmd         // format 1
}

// queueBodyFetch adds the commands that fetch the start of the body of id
// to p.
func (q *Queue) queueBodyFetch(ctx context.Context, p redis.Pipeliner, id string, version int) bodyCmds {
	k := q.key("body", id)
	if version >= 2 {
		return bodyCmds{list: p.LRange(ctx, k, 0, prefetchElems-1)}
	}
	return bodyCmds{head: p.GetRange(ctx, k, 0, maxCommandBytes-1), exists: p.Exists(ctx, k)}
}

// result turns the fetched start into a storedBody, or reports the body
// missing.
func (c bodyCmds) result(q *Queue, id string, version int, size int64) (*storedBody, bool) {
	b := &storedBody{q: q, key: q.key("body", id), version: version, size: size}
	if c.list != nil {
		elems, err := c.list.Result()
		if err != nil || len(elems) == 0 {
			return nil, false
		}
		b.first = elems
		b.more = len(elems) == prefetchElems
		return b, true
	}
	if n, err := c.exists.Result(); err != nil || n == 0 {
		return nil, false
	}
	head, _ := c.head.Result()
	b.first = []string{head}
	b.more = len(head) == maxCommandBytes
	return b, true
}

// reader returns a reader of the whole body from its start.
func (b *storedBody) reader() io.Reader {
	r := &bodyReader{b: b, pieces: make([]string, 0, prefetchElems), done: !b.more}
	r.pieces = append(r.pieces, b.first...)
	if b.version >= 2 {
		r.next = int64(len(b.first))
	} else {
		r.next = int64(len(b.first[0]))
	}
	return r
}

// bodyReader reads a stored body, fetching the next chunks when it has
// handed out the ones it holds. The chunks stay the strings go-redis
// read them into: copying them into []byte first would allocate every
// byte of the body twice.
type bodyReader struct {
	b      *storedBody
	pieces []string // fetched and not yet read
	next   int64    // format 2: the next element; format 1: the next byte
	done   bool     // everything is fetched
	read   int64
	err    error
}

// ErrBodyChanged is returned by a body reader when the stored body ended
// or vanished while it was being read (it was acknowledged or purged
// meanwhile).
var ErrBodyChanged = errors.New("stored body changed while it was read")

func (r *bodyReader) Read(p []byte) (int, error) {
	for {
		for len(r.pieces) > 0 && len(r.pieces[0]) == 0 {
			r.pieces = r.pieces[1:]
		}
		if len(r.pieces) > 0 {
			n := copy(p, r.pieces[0])
			r.pieces[0] = r.pieces[0][n:]
			r.read += int64(n)
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			if r.b.size >= 0 && r.read != r.b.size {
				r.err = fmt.Errorf("%s: %d bytes, the record says %d: %w", r.b.key, r.read, r.b.size, ErrBodyChanged)
				return 0, r.err
			}
			return 0, io.EOF
		}
		r.err = r.fetch()
	}
}

// fetch reads the next few chunks.
func (r *bodyReader) fetch() error {
	q := r.b.q
	ctx, cancel := q.sizedCtx(context.Background(), maxCommandBytes)
	defer cancel()
	if r.b.version >= 2 {
		elems, err := q.rdb.LRange(ctx, r.b.key, r.next, r.next+prefetchElems-1).Result()
		if err != nil {
			return fmt.Errorf("read %s: %w", r.b.key, classify(err))
		}
		r.pieces = append(r.pieces, elems...)
		r.next += int64(len(elems))
		r.done = len(elems) < prefetchElems
		return nil
	}
	b, err := q.rdb.GetRange(ctx, r.b.key, r.next, r.next+maxCommandBytes-1).Result()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.b.key, classify(err))
	}
	r.pieces = append(r.pieces, b)
	r.next += int64(len(b))
	r.done = len(b) < maxCommandBytes
	return nil
}

// openBody fetches the start of the body of id, whose record gives size
// (-1: unknown). The key's type says the format: a list is format 2, a
// string format 1.
func (q *Queue) openBody(ctx context.Context, id string, size int64) (*storedBody, error) {
	ctx, cancel := q.sizedCtx(ctx, maxCommandBytes)
	defer cancel()
	t, err := q.rdb.Type(ctx, q.key("body", id)).Result()
	if err != nil {
		return nil, fmt.Errorf("body of %s: %w", id, classify(err))
	}
	version := 1
	if t == "list" {
		version = 2
	}
	var c bodyCmds
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		c = q.queueBodyFetch(ctx, p, id, version)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("body of %s: %w", id, classify(err))
	}
	b, ok := c.result(q, id, version, size)
	if !ok {
		return nil, fmt.Errorf("body of %s: %w", id, ErrNotFound)
	}
	return b, nil
}
