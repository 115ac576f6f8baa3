package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Switch is what a planned switch-over did.
type Switch struct {
	From, To string        // the primary before and after (host:port)
	Paused   time.Duration // how long writes to the old primary waited
}

// pauseLimit bounds the CLIENT PAUSE: Redis lifts it on its own after
// that, so a switch-over that dies midway stops writes for seconds, not
// for good.
const pauseLimit = 10 * time.Second

// switchover moves the primary to a replica without losing or refusing
// a write. It runs the same sequence of Redis's own commands as `mxq
// redis switchover`, so that the test network can call the command
// instead:
//
//  1. CLIENT PAUSE WRITE on the primary: writes wait, reads go on;
//  2. wait until every online replica's offset has reached the
//     primary's, so the replica Sentinel promotes has every write;
//  3. SENTINEL FAILOVER;
//  4. once the sentinels name the new primary and it answers as one,
//     REPLICAOF it on the old primary, without waiting for Sentinel to
//     get round to it;
//  5. CLIENT UNPAUSE: the writes that waited are answered READONLY, and
//     their clients (mxd rides through it) send them to the new primary.
//
// SENTINEL FAILOVER alone would promote a replica at once, and writes
// acknowledged by the old primary but not yet replicated would be lost.
func switchover(ctx context.Context, sentinels []string) (Switch, error) {
	var sw Switch
	from, err := primaryAddr(ctx, sentinels)
	if err != nil {
		return sw, err
	}
	sw.From = from
	old := redis.NewClient(&redis.Options{Addr: from, MaxRetries: -1})
	defer old.Close()
	start := time.Now()
	if err := old.Do(ctx, "CLIENT", "PAUSE", pauseLimit.Milliseconds(), "WRITE").Err(); err != nil {
		return sw, fmt.Errorf("client pause on %s: %w", from, err)
	}
	unpause := func() error {
		err := old.Do(context.WithoutCancel(ctx), "CLIENT", "UNPAUSE").Err()
		sw.Paused = time.Since(start)
		return err
	}
	if err := waitCaughtUp(ctx, old); err != nil {
		return sw, errors.Join(err, unpause())
	}
	sen, err := firstSentinel(ctx, sentinels)
	if err != nil {
		return sw, errors.Join(err, unpause())
	}
	err = sen.Failover(ctx, masterName).Err()
	sen.Close()
	if err != nil {
		return sw, errors.Join(fmt.Errorf("sentinel failover: %w", err), unpause())
	}
	for {
		if to, err := primaryAddr(ctx, sentinels); err == nil && to != from &&
			replicationInfo(ctx, to)["role"] == "master" {
			sw.To = to
			break
		}
		if err := pollWait(ctx); err != nil {
			return sw, errors.Join(fmt.Errorf("waiting for the promotion: %w", err), unpause())
		}
	}
	host, port, _ := net.SplitHostPort(sw.To)
	if err := old.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return sw, errors.Join(fmt.Errorf("replicaof on %s: %w", from, err), unpause())
	}
	return sw, unpause()
}

// waitCaughtUp waits until every online replica of the primary has its
// replication offset. It asks the replicas themselves: the offsets the
// primary lists are what the replicas last acknowledged, once a second.
func waitCaughtUp(ctx context.Context, primary *redis.Client) error {
	for {
		info, err := primary.Info(ctx, "replication").Result()
		if err == nil && caughtUp(ctx, info) {
			return nil
		}
		if err := pollWait(ctx); err != nil {
			return fmt.Errorf("waiting for the replicas to catch up: %w", err)
		}
	}
}

// caughtUp reads INFO replication of a primary and reports whether it
// has a replica online and every online replica says it has processed
// the primary's master_repl_offset.
func caughtUp(ctx context.Context, info string) bool {
	var offset int64 = -1
	var replicas []string
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case !ok:
		case k == "master_repl_offset":
			offset, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online"):
			// slave0:ip=…,port=…,state=online,offset=…,lag=…
			f := map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				if a, b, ok := strings.Cut(kv, "="); ok {
					f[a] = b
				}
			}
			replicas = append(replicas, net.JoinHostPort(f["ip"], f["port"]))
		}
	}
	if offset < 0 || len(replicas) == 0 {
		return false
	}
	for _, r := range replicas {
		o, err := strconv.ParseInt(replicationInfo(ctx, r)["slave_repl_offset"], 10, 64)
		if err != nil || o < offset {
			return false
		}
	}
	return true
}

func firstSentinel(ctx context.Context, addrs []string) (*redis.SentinelClient, error) {
	for _, a := range addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		if c.Ping(ctx).Err() == nil {
			return c, nil
		}
		c.Close()
	}
	return nil, errors.New("no sentinel answers")
}

// pollWait is the pause between two looks at a condition; it fails when
// ctx ends.
func pollWait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}
