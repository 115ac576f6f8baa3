package queue

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// LogTo sends the Redis client's own messages (failed dials, pool
// trouble) to l at level warn, instead of the standard logger on stderr.
// go-redis has one logger per process, so this is process-wide: daemons
// call it once at start.
func LogTo(l *slog.Logger) {
	redis.SetLogger(redisLogger{l})
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
