package queuetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/internal/servertest"
)

// MasterName is the name the sentinels of a Set monitor the primary by.
const MasterName = "mxq"

// Set is a primary, its replicas and three Redis Sentinels, all real
// servers on loopback, as docs/redis.md deploys them: appendfsync always
// everywhere, min-replicas-to-write 1, and Sentinel's
// down-after-milliseconds at 1000 so a failover takes a few seconds.
type Set struct {
	t         testing.TB
	Servers   []*Redis // Servers[0] starts as the primary
	Sentinels []*Redis
}

// StartSet starts a primary with replicas replicas and three sentinels,
// and returns once every sentinel sees the primary, every replica and
// the other sentinels. Extra options apply to every data server.
func StartSet(t testing.TB, replicas int, opts ...Option) *Set {
	t.Helper()
	servertest.LookPath(t, "redis-server", "install it with `apt-get install redis-server` (or run `make test`, which does)")
	s := &Set{t: t}
	base := []Option{
		Config("min-replicas-to-write 1"),
		Config("min-replicas-max-lag 10"),
		Config("repl-diskless-sync yes"),
		Config("repl-diskless-sync-delay 0"),
	}
	primary := StartRedis(t, append(base, opts...)...)
	s.Servers = append(s.Servers, primary)
	for i := 0; i < replicas; i++ {
		o := append(append([]Option{}, base...), opts...)
		// Equal priorities: Sentinel then promotes the replica with the
		// largest offset, the one that has every write a WAIT confirmed.
		o = append(o, Config("replicaof 127.0.0.1 "+strconv.Itoa(primary.port)),
			Config("replica-priority 100"))
		s.Servers = append(s.Servers, StartRedis(t, o...))
	}
	for i := 0; i < 3; i++ {
		s.Sentinels = append(s.Sentinels, startSentinel(t, primary.port))
	}
	s.waitSeen(replicas)
	return s
}

// startSentinel starts one sentinel watching the primary on port. Each
// has its own config file, which it rewrites with what it learns.
func startSentinel(t testing.TB, primaryPort int) *Redis {
	t.Helper()
	return startServer(t, true, func(port int, dir string) []string {
		return []string{
			"bind 127.0.0.1",
			"port " + strconv.Itoa(port),
			"dir " + dir,
			"daemonize no",
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", MasterName, primaryPort),
			"sentinel down-after-milliseconds " + MasterName + " 1000",
			"sentinel failover-timeout " + MasterName + " 10000",
			"sentinel parallel-syncs " + MasterName + " 2",
		}
	})
}

// URL is the Sentinel URL of the set, in the form queue.Open takes.
func (s *Set) URL() string {
	q := url.Values{"master_name": {MasterName}}
	for _, sen := range s.Sentinels[1:] {
		q.Add("addr", sen.Addr())
	}
	return "redis://" + s.Sentinels[0].Addr() + "/0?" + q.Encode()
}

// sentinel returns a client of the first sentinel that answers.
func (s *Set) sentinel(ctx context.Context) *redis.SentinelClient {
	for _, sen := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr(), MaxRetries: -1})
		if c.Ping(ctx).Err() == nil {
			return c
		}
		c.Close()
	}
	return nil
}

// Primary returns the server the sentinels name as primary now.
func (s *Set) Primary() *Redis {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.named(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// named returns the server the first sentinel that answers names as
// primary.
func (s *Set) named(ctx context.Context) (*Redis, error) {
	c := s.sentinel(ctx)
	if c == nil {
		return nil, errors.New("no sentinel answers")
	}
	defer c.Close()
	addr, err := c.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return nil, fmt.Errorf("sentinel get-master-addr-by-name: %w", err)
	}
	for _, r := range s.Servers {
		if r.Addr() == addr[0]+":"+addr[1] {
			return r, nil
		}
	}
	return nil, fmt.Errorf("sentinels name %v, not a server of the set", addr)
}

// WaitFailover waits until the sentinels name a primary other than old,
// and that server answers as a primary with min replicas attached.
func (s *Set) WaitFailover(old *Redis, min int) *Redis {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p := s.primaryIfSettled(old, min); p != nil {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("no failover away from %s within 60s", old.Addr())
	return nil
}

func (s *Set) primaryIfSettled(old *Redis, min int) *Redis {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := s.named(ctx)
	if err != nil || r == old || connectedReplicas(ctx, r.Addr()) < min {
		return nil
	}
	return r
}

// connectedReplicas is the connected_slaves of INFO replication of the
// server at addr, -1 when it is not a primary or does not answer.
func connectedReplicas(ctx context.Context, addr string) int {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "role:master") {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// waitSeen waits until every sentinel knows the replicas and the two
// other sentinels, and the primary has its replicas online: before that,
// a failover could not happen, or would pick from a partial view.
func (s *Set) waitSeen(replicas int) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s.seen(replicas) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("sentinels did not see %d replicas and each other within 60s", replicas)
}

func (s *Set) seen(replicas int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sentinels := make([]string, len(s.Sentinels))
	for i, sen := range s.Sentinels {
		sentinels[i] = sen.Addr()
	}
	return SentinelsSee(ctx, s.Servers[0].Addr(), sentinels, replicas)
}

// SentinelsSee reports whether the primary at primary has replicas
// replicas connected, and every sentinel at sentinels (host:port) knows
// those replicas of MasterName and the other sentinels.
func SentinelsSee(ctx context.Context, primary string, sentinels []string, replicas int) bool {
	if connectedReplicas(ctx, primary) < replicas {
		return false
	}
	for _, addr := range sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
		m, err := c.Master(ctx, MasterName).Result()
		c.Close()
		if err != nil {
			return false
		}
		ns, _ := strconv.Atoi(m["num-slaves"])
		no, _ := strconv.Atoi(m["num-other-sentinels"])
		if ns < replicas || no < len(sentinels)-1 {
			return false
		}
	}
	return true
}
