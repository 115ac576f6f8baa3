package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyErr is an error reply of Redis, as go-redis types them.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestClassify(t *testing.T) {
	oom := replyErr("OOM command not allowed when used memory > 'maxmemory'.")
	abort := replyErr("EXECABORT Transaction discarded because of previous errors.")
	queued := func(errs ...error) []redis.Cmder {
		var cmds []redis.Cmder
		for _, err := range errs {
			c := redis.NewStatusCmd(context.Background())
			c.SetErr(err)
			cmds = append(cmds, c)
		}
		return cmds
	}
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"oom", oom, OutOfMemory},
		{"wrapped oom", fmt.Errorf("enqueue x: %w", oom), OutOfMemory},
		{"oom in a script", replyErr("OOM command not allowed when used memory > 'maxmemory'. script: abc, on @user_script:1."), OutOfMemory},
		{"transaction aborted by oom", execErr(queued(oom, oom), abort), OutOfMemory},
		{"transaction aborted by another error", execErr(queued(nil, replyErr("WRONGTYPE Operation against a key holding the wrong kind of value")), abort), Unavailable},
		{"transaction aborted, no reason", execErr(queued(nil), abort), Unavailable},
		{"not a reply of Redis", errors.New("OOM lookalike from elsewhere"), Unavailable},
		{"loading", replyErr("LOADING Redis is loading the dataset in memory"), Unavailable},
		{"network", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var qe *Error
			if err := classify(tt.err); !errors.As(err, &qe) || qe.Kind != tt.want {
				t.Errorf("classify(%v) = %v, want a queue error of kind %v", tt.err, err, tt.want)
			}
		})
	}
	if err := classify(nil); err != nil {
		t.Errorf("classify(nil) = %v", err)
	}
	if err := classify(redis.Nil); err != redis.Nil {
		t.Errorf("classify(redis.Nil) = %v, want redis.Nil", err)
	}
}
