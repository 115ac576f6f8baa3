package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/redisha"
	"mxq/setting"
)

// DefaultURL is the Redis a command opens when its configuration names
// none: a local one.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Options tune a Queue. Start from DefaultOptions: Open uses them as they
// are, and refuses what Check refuses.
type Options struct {
	// Name is the queue's name; every key carries it as the hash tag
	// {Name}.
	Name string
	// DedupWindow is how long a queued message's dedup key lives: a
	// sender's retry of the same message within the window is not queued
	// again.
	DedupWindow time.Duration
	// Replicas is how many replicas must confirm an enqueue (WAIT) before
	// it counts as durable. Zero means no WAIT. A consumer's
	// acknowledgements and per-recipient marks wait for them too, in
	// batches; one they do not confirm in time still counts, and is
	// counted (Consumer.Stats).
	Replicas int
	// ReplicaTimeout bounds the WAIT.
	ReplicaTimeout time.Duration
	// Timeout bounds every Redis command that carries little data.
	Timeout time.Duration
	// MinRate is the slowest transfer, in bytes per second, that a
	// command carrying a body's chunks may take on top of Timeout before
	// it counts as failed.
	MinRate int64
}

// DefaultOptions are the queue's defaults, each stated here alone.
func DefaultOptions() Options {
	return Options{
		Name:           "mxq",
		DedupWindow:    24 * time.Hour,
		ReplicaTimeout: time.Second,
		Timeout:        5 * time.Second,
		MinRate:        1 << 20,
	}
}

// maxCommandBytes is the most body data one command carries: Enqueue and
// Spool.Append send at most this much at a time.
const maxCommandBytes = 4 * ChunkSize

// Check reports each option Open cannot use, as a *setting.Error.
func (o *Options) Check() error {
	ck := setting.For(o)
	ck.Required(&o.Name)
	if o.Replicas < 0 {
		ck.Add(&o.Replicas, "want 0 (no waiting) or more")
	}
	for _, d := range []*time.Duration{&o.DedupWindow, &o.ReplicaTimeout, &o.Timeout} {
		setting.Positive(ck, d)
	}
	setting.Positive(ck, &o.MinRate)
	return ck.Err()
}

// Queue is a handle on one queue in one Redis. It is safe for concurrent
// use.
type Queue struct {
	conn    *redisha.Client
	rdb     *redis.Client // conn's
	opt     Options
	tag     string // "{name}"
	formats formatState
}

// Open connects to the Redis at url and returns the queue named opt.Name.
// url is one server, redis://[user:pass@]host:port/db (rediss:// for
// TLS, unix:///path), or Redis Sentinels in go-redis's form: a URL with
// master_name, redis://sentinel1:26379/0?master_name=mxq&addr=sentinel2:26379,
// which finds the primary through them and follows it through a
// failover. It does not contact Redis: use Ping for that.
func Open(url string, opt Options) (*Queue, error) {
	if err := opt.Check(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	// The socket deadlines are the outer bound; each command's context
	// (Timeout, plus its size at MinRate for chunks of a body, plus
	// ReplicaTimeout for a pipeline that ends with WAIT) is the tighter
	// one.
	sock := opt.sizedTimeout(maxCommandBytes)
	if opt.Replicas > 0 {
		sock += opt.ReplicaTimeout
	}
	conn, err := redisha.Open(url, redisha.Config{Name: clientName, Timeout: opt.Timeout, SocketTimeout: sock})
	if err != nil {
		return nil, err
	}
	return &Queue{conn: conn, rdb: conn.Redis(), opt: opt, tag: "{" + opt.Name + "}"}, nil
}

// Close closes the connections to Redis.
func (q *Queue) Close() error { return q.conn.Close() }

// Redis is the connection the queue uses: for what concerns Redis itself
// (Replication, Switchover), and for packages that keep keys of their own
// in the same Redis, under the queue's hash tag (package maintenance).
// The queue's own keys are written only through Queue.
func (q *Queue) Redis() *redisha.Client { return q.conn }

// Name is the queue's name.
func (q *Queue) Name() string { return q.opt.Name }

// Ping checks that Redis answers.
func (q *Queue) Ping(ctx context.Context) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	return classify(q.rdb.Ping(ctx).Err())
}

func (q *Queue) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, q.opt.Timeout)
}

// key builds a key of this queue: key("body", id) is "{mxq}:body:ID".
func (q *Queue) key(parts ...string) string {
	return q.tag + ":" + strings.Join(parts, ":")
}

// Kind says what went wrong with Redis, in the terms a producer answers.
type Kind int

const (
	// Unavailable: Redis is down, slow, loading, read-only, a replica is
	// missing, or any other failure that should pass. SMTP: 451 4.3.0.
	Unavailable Kind = iota
	// OutOfMemory: Redis refused a write because maxmemory is reached.
	// SMTP: 452 4.3.1.
	OutOfMemory
)

func (k Kind) String() string {
	if k == OutOfMemory {
		return "out of memory"
	}
	return "unavailable"
}

// Error is a failure of the queue. Every error this package returns for a
// Redis problem is an *Error.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return "queue " + e.Kind.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// errReplicas is the cause when WAIT returns fewer replicas than required.
var errReplicas = errors.New("replicas did not confirm the write")

// classify wraps a Redis error into an *Error. nil and redis.Nil are
// returned unchanged.
func classify(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	// Only Redis's own reply counts: a network error whose text happens
	// to start with OOM is not Redis refusing a write.
	if redis.HasErrorPrefix(err, "OOM ") {
		return &Error{Kind: OutOfMemory, Err: err}
	}
	// The refusal of the enqueue and append scripts when a spool lost
	// its beginning.
	if redis.HasErrorPrefix(err, "SPOOLLOST") {
		return &Error{Kind: Unavailable, Err: fmt.Errorf("%w: %v", ErrSpoolLost, err)}
	}
	return &Error{Kind: Unavailable, Err: err}
}

// execErr is the error of a transaction (MULTI … EXEC). When Redis
// refused a queued command, EXEC answers only EXECABORT; the reason (OOM
// when maxmemory is reached) is in the reply to that command, so that is
// the error returned, for classify to see.
func execErr(cmds []redis.Cmder, err error) error {
	if !redis.HasErrorPrefix(err, "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !redis.HasErrorPrefix(cerr, "EXECABORT") {
			return fmt.Errorf("transaction aborted: %w", cerr)
		}
	}
	return err
}
