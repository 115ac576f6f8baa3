package queue

import (
	"context"
	"fmt"
	"slices"
)

// Format 1 stores a body as one string, header and data joined, which a
// list of chunks cannot become inside Redis at a reasonable cost: a Lua
// script that takes a 4 MiB string as an argument held Redis 106 ms in a
// measurement on Redis 7.0, a 32 MiB one 750 ms (joining a list of 512
// chunks in Lua took as long), and Redis runs nothing else meanwhile;
// a plain SET of the same bytes costs it microseconds. So an MX host writing format 1 joins a
// spooled body in its own memory, reads the chunks back a few at a time
// and stores the whole with one SET into the spool key, which the commit
// renames. At most maxJoins bodies are held at once; format 2 never holds
// one.
const maxJoins = 2

// format1 turns the arguments of a format 1 commit into what
// enqueueScript expects: a spooled body joined into the spool key
// (spooled, nothing else), any other header and data in header alone.
func (q *Queue) format1(ctx context.Context, sp *Spool, a enqueueArgs) (enqueueArgs, error) {
	if !a.spooled {
		a.header = slices.Concat(append([][]byte{a.header}, a.tail...)...)
		a.tail = nil
		return a, nil
	}
	if err := q.joinSpool(ctx, sp, a.header, a.tail); err != nil {
		return a, err
	}
	a.header, a.tail = nil, nil
	return a, nil
}

// joinSpool replaces the chunks of sp by one string: header, the chunks,
// tail. A call again after a failure finds a join that was done.
func (q *Queue) joinSpool(ctx context.Context, sp *Spool, header []byte, tail [][]byte) error {
	if sp.joined {
		return nil
	}
	total := int64(len(header)) + sp.size + int64(bytesOf(tail))
	q.formats.joinOnce.Do(func() { q.formats.joins = make(chan struct{}, maxJoins) })
	select {
	case q.formats.joins <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("spool %s: wait to join the body: %w", sp.id, &Error{Kind: Unavailable, Err: ctx.Err()})
	}
	defer func() { <-q.formats.joins }()

	tctx, cancel := q.ctx(ctx)
	typ, err := q.rdb.Type(tctx, sp.key).Result()
	var n int64
	if err == nil && typ == "string" {
		n, err = q.rdb.StrLen(tctx, sp.key).Result()
	}
	cancel()
	switch {
	case err != nil:
		return fmt.Errorf("spool %s: %w", sp.id, classify(err))
	case typ == "string" && n == total:
		sp.joined = true // by a call whose reply was lost
		return nil
	case typ != "list":
		return fmt.Errorf("spool %s: %w", sp.id, &Error{Kind: Unavailable, Err: fmt.Errorf("%w: a %s where the spool should be", ErrSpoolLost, typ)})
	}
	body := make([]byte, 0, total)
	body = append(body, header...)
	for i := int64(0); i < sp.chunks; i += prefetchElems {
		rctx, cancel := q.sizedCtx(ctx, maxCommandBytes)
		cs, err := q.rdb.LRange(rctx, sp.key, i, i+prefetchElems-1).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("spool %s: read back: %w", sp.id, classify(err))
		}
		for _, c := range cs {
			body = append(body, c...)
		}
	}
	if int64(len(body)) != int64(len(header))+sp.size {
		return fmt.Errorf("spool %s: %w", sp.id, &Error{Kind: Unavailable, Err: fmt.Errorf("%w: %d bytes, %d appended", ErrSpoolLost, len(body)-len(header), sp.size)})
	}
	for _, c := range tail {
		body = append(body, c...)
	}
	sctx, cancel := q.sizedCtx(ctx, len(body))
	defer cancel()
	if err := q.rdb.Set(sctx, sp.key, body, sp.ttl).Err(); err != nil {
		return fmt.Errorf("spool %s: store the joined body: %w", sp.id, classify(err))
	}
	sp.joined = true
	return nil
}
