package network

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue/queuetest"
)

// masterName is the name the sentinels monitor the queue's primary by:
// queuetest's, which SentinelsSee asks them about.
const masterName = queuetest.MasterName

// Redis is one redis-server of the queue on its host, port 6379, with a
// config file of its own: Sentinel rewrites it (CONFIG REWRITE) when it
// turns the server into a replica or a primary, so that a restart keeps
// the role Sentinel gave it.
type Redis struct {
	Host *Host
	Proc *Proc
	conf string
}

// StartRedis runs a redis-server of the queue on h: AOF with fsync always,
// no eviction, and the extra config lines.
func StartRedis(t testing.TB, h *Host, extra ...string) *Redis {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, h.Name+"-redis")
	os.MkdirAll(dir, 0o755)
	lines := append([]string{
		"bind " + h.IP,
		"port 6379",
		"dir " + dir,
		`save ""`,
		"appendonly yes",
		"appendfsync always",
		"maxmemory 512mb",
		"maxmemory-policy noeviction",
		"protected-mode no",
		"daemonize no",
	}, extra...)
	r := &Redis{Host: h, conf: filepath.Join(dir, "redis.conf")}
	if err := os.WriteFile(r.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Start(t)
	return r
}

// Start (re)starts the server with its config file, as it is now.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.Proc = r.Host.Start("redis", "redis-server", r.conf)
	waitTCP(t, r.Proc, r.Addr())
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return r.Host.IP + ":6379" }

// RedisSet is the queue's Redis as docs/redis.md deploys it for high
// availability: a primary, two replicas and three Sentinels, every data
// server with appendfsync always and min-replicas-to-write 1.
//
// Where they run: the primary starts on the lists host, where listd
// reads. The replicas get two hosts of their own, redis2 and redis3,
// rather than two MX hosts: the MX hosts stay stateless (the rolling
// maintenance restarts their mxd, and an MX host can be replaced without
// a thought for its disk), and a replica shares no host with the primary,
// so no one host holds the only copies. Each of the three data hosts
// also runs a sentinel: losing a host takes one data server and one
// sentinel, and the two sentinels left are still the majority a failover
// needs (quorum 2 of 3). A kill -9 of a redis-server leaves its host's
// sentinel running, as a crash of the process would.
type RedisSet struct {
	Servers   []*Redis // Servers[0] starts as the primary
	Sentinels []*Host  // each runs a sentinel on port 26379
}

// StartRedisSet starts the primary on primary, a replica on each of
// replicas and a sentinel on each of the three data hosts, and returns
// once every sentinel sees the primary, both replicas and the other
// sentinels.
func StartRedisSet(t testing.TB, primary *Host, replicas ...*Host) *RedisSet {
	t.Helper()
	s := &RedisSet{}
	// A primary without a replica refuses writes (NOREPLICAS): an old
	// primary that comes back alone, or stays cut off from its replicas,
	// takes no mail that a failover would then lose. The diskless sync
	// lets a replica that rejoins catch up without a dump on disk first.
	base := []string{
		"min-replicas-to-write 1",
		"min-replicas-max-lag 10",
		"repl-diskless-sync yes",
		"repl-diskless-sync-delay 0",
	}
	s.Servers = append(s.Servers, StartRedis(t, primary, base...))
	for _, h := range replicas {
		s.Servers = append(s.Servers, StartRedis(t, h, append(base, "replicaof "+primary.IP+" 6379")...))
	}
	for _, r := range s.Servers {
		s.startSentinel(t, r.Host, primary.IP)
	}
	waitUntil(t, 60*time.Second, "the sentinels to see the replicas and each other", func() bool {
		return s.seen(len(replicas))
	})
	return s
}

// startSentinel runs a sentinel on h with a fresh config file in a
// directory of its own: Sentinel rewrites the file with what it learns.
// down-after-milliseconds 1000: a primary that does not answer for a
// second is taken as down, so a failover takes a few seconds.
func (s *RedisSet) startSentinel(t testing.TB, h *Host, primaryIP string) {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, h.Name+"-sentinel")
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "sentinel.conf")
	lines := []string{
		"bind " + h.IP,
		"port 26379",
		"dir " + dir,
		"protected-mode no",
		"daemonize no",
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s %s 6379 2", masterName, primaryIP),
		"sentinel down-after-milliseconds " + masterName + " 1000",
		"sentinel failover-timeout " + masterName + " 10000",
		"sentinel parallel-syncs " + masterName + " 2",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.Start("sentinel", "redis-server", conf, "--sentinel")
	waitTCP(t, p, h.IP+":26379")
	s.Sentinels = append(s.Sentinels, h)
}

// SentinelAddrs are the sentinels' host:port.
func (s *RedisSet) SentinelAddrs() []string {
	var out []string
	for _, h := range s.Sentinels {
		out = append(out, h.IP+":26379")
	}
	return out
}

// URL is the Sentinel URL every mxd, listd and dnsctl is given.
func (s *RedisSet) URL() string {
	addrs := s.SentinelAddrs()
	q := url.Values{"master_name": {masterName}, "addr": addrs[1:]}
	return "redis://" + addrs[0] + "/0?" + q.Encode()
}

// seen reports whether the primary has its replicas online and every
// sentinel knows them and the two other sentinels: before that, a
// failover could not happen, or would pick from a partial view.
func (s *RedisSet) seen(replicas int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return queuetest.SentinelsSee(ctx, s.Servers[0].Addr(), s.SentinelAddrs(), replicas)
}

// Primary returns the server the first sentinel that answers names as
// primary now, as a client of the sentinels finds it (nil if none
// answers, or it names no server of the set).
func (s *RedisSet) Primary(ctx context.Context) *Redis {
	addr, err := primaryAddr(ctx, s.SentinelAddrs())
	if err != nil {
		return nil
	}
	return s.server(addr)
}

// server is the server of the set at addr, nil if none.
func (s *RedisSet) server(addr string) *Redis {
	for _, r := range s.Servers {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// named asks every sentinel which server it names as primary. agreed is
// that server when every sentinel answers and names the same one; view
// says what each named, for a failure message.
func (s *RedisSet) named(ctx context.Context) (agreed *Redis, view string) {
	var names []string
	all := true
	for i, a := range s.SentinelAddrs() {
		addr, err := primaryAddr(ctx, []string{a})
		r := s.server(addr)
		name := "no answer"
		switch {
		case err == nil && r != nil:
			name = r.Host.Name
		case err == nil:
			name = addr
		}
		names = append(names, s.Sentinels[i].Name+": "+name)
		if i == 0 {
			agreed = r
		}
		if err != nil || r == nil || r != agreed {
			all = false
		}
	}
	if !all {
		agreed = nil
	}
	return agreed, "sentinels name " + strings.Join(names, ", ")
}

// WaitHealthy waits until the set is as it started, whichever server is
// primary: every sentinel names the same primary, that server has every
// other one as a replica online, and every sentinel knows them and the
// other sentinels. It returns the primary.
func (s *RedisSet) WaitHealthy(t testing.TB) *Redis {
	t.Helper()
	var p *Redis
	want := len(s.Servers) - 1
	waitState(t, 60*time.Second, "every sentinel to name one primary with every other server its replica, online", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var view string
		p, view = s.named(ctx)
		if p == nil {
			return false, view
		}
		n := onlineReplicas(ctx, p.Addr())
		view += fmt.Sprintf("; %s has %d replicas online", p.Host.Name, n)
		return n == want && queuetest.SentinelsSee(ctx, p.Addr(), s.SentinelAddrs(), want), view
	})
	return p
}

// WaitPromoted waits until a sentinel names as primary a server other
// than those gone, and that server says it is one (role:master): the
// moment the sentinels have promoted a replica, before the others are
// told to follow it. It returns that server.
func (s *RedisSet) WaitPromoted(t testing.TB, gone ...*Redis) *Redis {
	t.Helper()
	var p *Redis
	// Two failed elections (a split vote, each followed by twice
	// failover-timeout before the next) still fit.
	waitState(t, 90*time.Second, "the sentinels to promote a replica", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, a := range s.SentinelAddrs() {
			addr, err := primaryAddr(ctx, []string{a})
			if p = s.server(addr); err == nil && p != nil && !slices.Contains(gone, p) &&
				replicationInfo(ctx, addr)["role"] == "master" {
				return true, ""
			}
		}
		_, view := s.named(ctx)
		return false, view
	})
	return p
}

// WaitPrimary waits until the sentinels name a primary other than those
// gone that answers as a primary with at least one replica attached,
// that is until mxd's writes can be confirmed again, and returns it.
func (s *RedisSet) WaitPrimary(t testing.TB, gone ...*Redis) *Redis {
	t.Helper()
	var p *Redis
	waitState(t, 60*time.Second, "a new primary with a replica", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p = s.Primary(ctx)
		if p != nil && !slices.Contains(gone, p) && connectedReplicas(ctx, p.Addr()) >= 1 {
			return true, ""
		}
		_, view := s.named(ctx)
		return false, view
	})
	return p
}

// WaitRejoin waits until r replicates, with its link up, from the
// primary every sentinel names, whichever server that is: the sentinels
// may have failed over again meanwhile. It returns that primary.
func (s *RedisSet) WaitRejoin(t testing.TB, r *Redis) *Redis {
	t.Helper()
	var p *Redis
	waitState(t, 60*time.Second, r.Host.Name+" to replicate from the primary the sentinels name", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var view string
		p, view = s.named(ctx)
		info := replicationInfo(ctx, r.Addr())
		view += fmt.Sprintf("; %s says role:%s master_host:%s master_link_status:%s",
			r.Host.Name, info["role"], info["master_host"], info["master_link_status"])
		return p != nil && p != r && info["role"] == "slave" && info["master_host"] == p.Host.IP &&
			info["master_link_status"] == "up", view
	})
	return p
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (r *Redis) Kill() {
	r.Proc.Signal(syscall.SIGKILL)
	r.Proc.Wait(10 * time.Second)
}

// primaryAddr asks the first sentinel that answers for the primary.
func primaryAddr(ctx context.Context, sentinels []string) (string, error) {
	var err error
	for _, a := range sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		var addr []string
		addr, err = c.GetMasterAddrByName(ctx, masterName).Result()
		c.Close()
		if err == nil {
			return addr[0] + ":" + addr[1], nil
		}
	}
	return "", fmt.Errorf("no sentinel names the primary: %w", err)
}

// replicationInfo is INFO replication of the server at addr as a map
// (empty when it does not answer).
func replicationInfo(ctx context.Context, addr string) map[string]string {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	out := map[string]string{}
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return out
	}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// onlineReplicas is how many replicas the server at addr has that are
// online (have the data set and follow the writes), -1 when it is not a
// primary or does not answer.
func onlineReplicas(ctx context.Context, addr string) int {
	info := replicationInfo(ctx, addr)
	if info["role"] != "master" {
		return -1
	}
	n := 0
	for i := 0; ; i++ {
		line, ok := info["slave"+strconv.Itoa(i)]
		if !ok {
			return n
		}
		if strings.Contains(line, "state=online") {
			n++
		}
	}
}

// connectedReplicas is how many replicas the server at addr has online,
// -1 when it is not a primary or does not answer.
func connectedReplicas(ctx context.Context, addr string) int {
	info := replicationInfo(ctx, addr)
	if info["role"] != "master" {
		return -1
	}
	n, _ := strconv.Atoi(info["connected_slaves"])
	return n
}
