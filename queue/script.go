package queue

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// script is a Lua script whose KEYS come from a K and whose ARGV from an
// A. Each script has its own small structs whose fields name its keys
// and arguments; their keys and args methods put them in the order the
// script reads them, next to the script. A caller fills in fields by
// name, so it cannot pass them in the wrong order, nor one script's keys
// to another.
type script[K scriptKeys, A scriptArgs] struct {
	s   *redis.Script
	src string
}

// scriptKeys lists a script's KEYS in order.
type scriptKeys interface{ keys() []string }

// scriptArgs lists a script's ARGV in order.
type scriptArgs interface{ args() []any }

func newScript[K scriptKeys, A scriptArgs](src string) script[K, A] {
	return script[K, A]{s: redis.NewScript(src), src: src}
}

// run runs the script with EVALSHA, and EVAL when Redis does not have
// it yet.
func (s script[K, A]) run(ctx context.Context, c redis.Scripter, k K, a A) *redis.Cmd {
	return s.s.Run(ctx, c, k.keys(), a.args()...)
}

// evalSha runs the script with EVALSHA only, as a pipeline needs (it
// cannot fall back to EVAL by itself).
func (s script[K, A]) evalSha(ctx context.Context, c redis.Scripter, k K, a A) *redis.Cmd {
	return s.s.EvalSha(ctx, c, k.keys(), a.args()...)
}

// load loads the script into Redis's script cache.
func (s script[K, A]) load(ctx context.Context, c redis.Scripter) *redis.StringCmd {
	return s.s.Load(ctx, c)
}

// streamKey is the KEYS of a script that touches only the stream.
type streamKey struct{ stream string }

func (k streamKey) keys() []string { return []string{k.stream} }

// keyList is the KEYS of a script that takes any number of keys of one
// kind.
type keyList []string

func (k keyList) keys() []string { return k }

// noArgs is the ARGV of a script that takes none.
type noArgs struct{}

func (noArgs) args() []any { return nil }
