package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The maintenance lease and state let one dnsctl at a time, on any machine,
// take one MX host out of service: {NAME}:maint:lease holds the owner
// token of the running dnsctl, with an expiry, and {NAME}:maint:state the
// maintenance in progress (see the "Keys" table of docs/redis.md).
// The state outlives the lease: a dnsctl killed half-way loses the lease
// when it expires, but the state still says which host is out of DNS, so
// that the next run continues it instead of starting another.

// LeaseHeldError says another owner holds the maintenance lease.
type LeaseHeldError struct {
	Owner   string
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("maintenance lease held by %s until %s", e.Owner, e.Expires.Format(time.RFC3339))
}

// ErrMaintenanceLost says the caller's maintenance lease expired or was taken over: it must
// stop changing anything.
var ErrMaintenanceLost = errors.New("maintenance lease lost")

// Lease is the maintenance lease as Redis holds it.
type Lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// maintAcquireScript sets the lease to the owner for ttl when it is free or
// already the owner's; otherwise it returns the holder and its remaining ms.
var maintAcquireScript = newScript[leaseKey, leaseArgs](`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, cur, redis.call('PTTL', KEYS[1])}
`)

// maintRenewScript extends the lease only when the owner holds it.
var maintRenewScript = newScript[leaseKey, leaseArgs](`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// maintFencedScript sets the state (or, for "del", deletes the state and
// the lease) only when the owner holds the lease.
var maintFencedScript = newScript[fencedKeys, fencedArgs](`
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

// maintReleaseScript deletes the lease only when the owner holds it.
var maintReleaseScript = newScript[leaseKey, leaseOwner](`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

type leaseKey struct{ lease string }

func (k leaseKey) keys() []string { return []string{k.lease} }

type leaseOwner struct{ owner string }

func (a leaseOwner) args() []any { return []any{a.owner} }

type leaseArgs struct {
	owner string
	ttlMS int64
}

func (a leaseArgs) args() []any { return []any{a.owner, a.ttlMS} }

type fencedKeys struct{ lease, state string }

func (k fencedKeys) keys() []string { return []string{k.lease, k.state} }

type fencedArgs struct {
	owner string
	state []byte
	op    string // "set" or "del"
}

func (a fencedArgs) args() []any { return []any{a.owner, a.state, a.op} }

// AcquireLease takes the maintenance lease for owner for ttl, or extends
// it when owner already holds it. When someone else holds it, it returns a
// *LeaseHeldError.
func (q *Queue) AcquireLease(ctx context.Context, owner string, ttl time.Duration) error {
	if owner == "" {
		return errors.New("acquire lease: empty owner")
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	res, err := maintAcquireScript.run(ctx, q.rdb, leaseKey{q.key("maint", "lease")}, leaseArgs{owner: owner, ttlMS: ttl.Milliseconds()}).Slice()
	if err != nil {
		return classify(err)
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

// RenewLease extends owner's lease to ttl from now. It returns ErrMaintenanceLost
// when owner no longer holds it.
func (q *Queue) RenewLease(ctx context.Context, owner string, ttl time.Duration) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	n, err := maintRenewScript.run(ctx, q.rdb, leaseKey{q.key("maint", "lease")}, leaseArgs{owner: owner, ttlMS: ttl.Milliseconds()}).Int64()
	if err != nil {
		return classify(err)
	}
	if n != 1 {
		return ErrMaintenanceLost
	}
	return nil
}

// ReleaseLease gives the lease up if owner holds it; otherwise it does
// nothing.
func (q *Queue) ReleaseLease(ctx context.Context, owner string) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	return classify(maintReleaseScript.run(ctx, q.rdb, leaseKey{q.key("maint", "lease")}, leaseOwner{owner}).Err())
}

// CurrentLease returns the lease, or a zero Lease when nobody holds it.
func (q *Queue) CurrentLease(ctx context.Context) (Lease, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	k := q.key("maint", "lease")
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get, ttl = p.Get(ctx, k), p.PTTL(ctx, k)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, classify(err)
	}
	return Lease{Owner: get.Val(), Expires: time.Now().Add(ttl.Val())}, nil
}

// SaveMaintenance stores state as the maintenance in progress, only while
// owner holds the lease (ErrMaintenanceLost otherwise), so that a run that lost
// its lease cannot overwrite the state of the run that took over.
func (q *Queue) SaveMaintenance(ctx context.Context, owner string, state []byte) error {
	return q.fenced(ctx, owner, state, "set")
}

// ClearMaintenance deletes the state and the lease together, only while
// owner holds the lease (ErrMaintenanceLost otherwise).
func (q *Queue) ClearMaintenance(ctx context.Context, owner string) error {
	return q.fenced(ctx, owner, nil, "del")
}

func (q *Queue) fenced(ctx context.Context, owner string, state []byte, op string) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	keys := fencedKeys{lease: q.key("maint", "lease"), state: q.key("maint", "state")}
	n, err := maintFencedScript.run(ctx, q.rdb, keys, fencedArgs{owner: owner, state: state, op: op}).Int64()
	if err != nil {
		return classify(err)
	}
	if n != 1 {
		return ErrMaintenanceLost
	}
	return nil
}

// LoadMaintenance returns the stored state, or nil when no maintenance is
// in progress.
func (q *Queue) LoadMaintenance(ctx context.Context) ([]byte, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	b, err := q.rdb.Get(ctx, q.key("maint", "state")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, classify(err)
}
