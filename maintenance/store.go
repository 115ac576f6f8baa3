package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/redisha"
)

// Store is the maintenance lease and state of one queue's Redis, under
// the queue's hash tag: {NAME}:maint:lease holds the owner token of the
// running dnsctl, with an expiry, and {NAME}:maint:state the maintenance
// in progress (see the "Keys" table of docs/redis.md). It is safe for
// concurrent use.
type Store struct {
	rdb          *redis.Client
	timeout      time.Duration
	lease, state string // the keys
}

// New returns the Store of the queue named name (its hash tag) on c,
// the connection the queue uses (queue.Queue.Redis). Each command is
// bounded by c.Timeout.
func New(c *redisha.Client, name string) *Store {
	tag := "{" + name + "}"
	return &Store{rdb: c.Redis(), timeout: c.Timeout(), lease: tag + ":maint:lease", state: tag + ":maint:state"}
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// LeaseHeldError says another owner holds the maintenance lease.
type LeaseHeldError struct {
	Owner   string
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("maintenance lease held by %s until %s", e.Owner, e.Expires.Format(time.RFC3339))
}

// ErrLost says the caller's maintenance lease expired or was taken over:
// it must stop changing anything.
var ErrLost = errors.New("maintenance lease lost")

// Lease is the maintenance lease as Redis holds it.
type Lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// Each script below is run by one method of Store, whose typed
// arguments are its KEYS and ARGV, in that order.

// acquireScript sets the lease (KEYS[1]) to the owner (ARGV[1]) for ttl
// ms (ARGV[2]) when it is free or already the owner's; otherwise it
// returns the holder and its remaining ms.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, cur, redis.call('PTTL', KEYS[1])}
`)

// renewScript extends the lease (KEYS[1]) to ttl ms (ARGV[2]) only when
// the owner (ARGV[1]) holds it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// fencedScript sets the state (KEYS[2]) to ARGV[2], or, when ARGV[3] is
// "del", deletes the state and the lease (KEYS[1]), only when the owner
// (ARGV[1]) holds the lease.
var fencedScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if ARGV[3] == 'del' then
	redis.call('DEL', KEYS[2], KEYS[1])
else
	redis.call('SET', KEYS[2], ARGV[2])
end
return 1
`)

// releaseScript deletes the lease (KEYS[1]) only when the owner (ARGV[1])
// holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Acquire takes the maintenance lease for owner for ttl, or extends it
// when owner already holds it. When someone else holds it, it returns a
// *LeaseHeldError.
func (s *Store) Acquire(ctx context.Context, owner string, ttl time.Duration) error {
	if owner == "" {
		return errors.New("acquire lease: empty owner")
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := acquireScript.Run(ctx, s.rdb, []string{s.lease}, owner, ttl.Milliseconds()).Slice()
	if err != nil {
		return err
	}
	if len(res) != 3 {
		return fmt.Errorf("acquire lease: unexpected reply %v", res)
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return nil
	}
	holder, _ := res[1].(string)
	ms, _ := res[2].(int64)
	return &LeaseHeldError{Owner: holder, Expires: time.Now().Add(time.Duration(ms) * time.Millisecond)}
}

// Renew extends owner's lease to ttl from now. It returns ErrLost when
// owner no longer holds it.
func (s *Store) Renew(ctx context.Context, owner string, ttl time.Duration) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := renewScript.Run(ctx, s.rdb, []string{s.lease}, owner, ttl.Milliseconds()).Int64()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrLost
	}
	return nil
}

// Release gives the lease up if owner holds it; otherwise it does
// nothing.
func (s *Store) Release(ctx context.Context, owner string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return releaseScript.Run(ctx, s.rdb, []string{s.lease}, owner).Err()
}

// Current returns the lease, or a zero Lease when nobody holds it.
func (s *Store) Current(ctx context.Context) (Lease, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get, ttl = p.Get(ctx, s.lease), p.PTTL(ctx, s.lease)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, err
	}
	return Lease{Owner: get.Val(), Expires: time.Now().Add(ttl.Val())}, nil
}

// Save stores state as the maintenance in progress, only while owner
// holds the lease (ErrLost otherwise), so that a run that lost its lease
// cannot overwrite the state of the run that took over.
func (s *Store) Save(ctx context.Context, owner string, state []byte) error {
	return s.fenced(ctx, owner, state, "set")
}

// Clear deletes the state and the lease together, only while owner holds
// the lease (ErrLost otherwise).
func (s *Store) Clear(ctx context.Context, owner string) error {
	return s.fenced(ctx, owner, nil, "del")
}

// fenced runs fencedScript; op is "set" or "del".
func (s *Store) fenced(ctx context.Context, owner string, state []byte, op string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := fencedScript.Run(ctx, s.rdb, []string{s.lease, s.state}, owner, state, op).Int64()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrLost
	}
	return nil
}

// Load returns the stored state, or nil when no maintenance is in
// progress.
func (s *Store) Load(ctx context.Context) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.state).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}
