package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// LogTo sends the Redis client's own messages (failed dials, pool
// trouble, Sentinel naming a new primary) to l at level warn, instead of
// the standard logger on stderr. go-redis has one logger per process, so
// this is process-wide: daemons call it once at start.
//
// While Redis is away, the client reports every failed dial of its pool,
// several times a second. A message is therefore logged the first time,
// and then at most once per repeatEvery with how many times it came
// meanwhile; a different message (another address, another error) is
// logged at once.
func LogTo(l *slog.Logger) {
	redis.SetLogger(&redisLogger{l: l, seen: make(map[string]*repeats), now: time.Now})
}

const repeatEvery = time.Minute

type redisLogger struct {
	l    *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]*repeats
}

// repeats is what was left out of one message since it was last logged.
type repeats struct {
	logged time.Time
	n      int
}

func (r *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	now := r.now()
	r.mu.Lock()
	s := r.seen[msg]
	if s != nil && now.Sub(s.logged) < repeatEvery {
		s.n++
		r.mu.Unlock()
		return
	}
	left := 0
	if s != nil {
		left = s.n
	}
	if len(r.seen) >= 100 {
		clear(r.seen) // bounded: many distinct messages are logged anyway
	}
	r.seen[msg] = &repeats{logged: now}
	r.mu.Unlock()
	if left > 0 {
		r.l.WarnContext(ctx, "redis client", "detail", msg, "repeated", left)
		return
	}
	r.l.WarnContext(ctx, "redis client", "detail", msg)
}
