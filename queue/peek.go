package queue

import (
	"context"
	"fmt"
	"io"
)

// Peek returns up to n of the oldest queued records, without their bodies
// and without taking them.
func (q *Queue) Peek(ctx context.Context, n int64) ([]Record, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	ms, err := q.rdb.XRangeN(ctx, q.key("stream"), "-", "+", n).Result()
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Record, 0, len(ms))
	for _, m := range ms {
		r, err := decodeRecord(m.Values)
		if err != nil {
			return nil, fmt.Errorf("stream entry %s: %w", m.ID, err)
		}
		out = append(out, *r)
	}
	return out, nil
}

// Body returns a reader of the stored body of the queued message id (the
// MX host's header fields, then the client's data), which fetches it from
// Redis a few chunks at a time.
func (q *Queue) Body(ctx context.Context, id string) (io.Reader, error) {
	return q.recordBody(ctx, id, nil)
}
