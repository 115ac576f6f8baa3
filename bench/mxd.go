package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startRedis starts a redis-server as the queue needs it: AOF on with an
// fsync before every reply, no RDB snapshots, noeviction, b.maxmemory, and
// the AOF rewritten only once it has grown by 4 GB (docs/redis.md: with
// Redis's 64 MB default, big mail makes Redis rewrite its whole data set
// every few dozen messages).
func (b *bench) startRedis(ctx context.Context) (*proc, string, error) {
	dir := filepath.Join(b.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		p, err := startProc("redis-server", filepath.Join(dir, "redis.log"),
			"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--auto-aof-rewrite-min-size", "4gb",
			"--maxmemory", strconv.FormatInt(b.maxmemory, 10), "--maxmemory-policy", "noeviction", "--daemonize", "no")
		if err != nil {
			return nil, "", err
		}
		b.onExit(func() { p.stop(10 * time.Second) })
		addr := loopback(port)
		if lastErr = waitFor(ctx, "redis-server", 20*time.Second, procAlive(p), redisReady(addr)); lastErr == nil {
			return p, "redis://" + addr + "/0", nil
		}
		p.stop(time.Second)
	}
	return nil, "", lastErr
}

// redisReady sends PING and expects PONG (not LOADING).
func redisReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "PING\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "+PONG" {
			return fmt.Errorf("PING: %q", strings.TrimSpace(line))
		}
		return nil
	}
}

// mxdConfig is mxd's TOML for the bench. All load comes from 127.0.0.1,
// unlike real traffic from many senders, so the per-address cap is lifted;
// DNS goes to the bench's own server (startDNS); everything else keeps
// mxd's defaults. -mxd-set lines are appended.
const mxdConfig = `hostname = "mx-bench.invalid"
listen = ["{{listen}}"]
domains = ["{{domain}}"]
authserv_id = "{{domain}}"
redis = "{{redis}}"
metrics_listen = "{{metrics}}"
dns_resolver = "{{dns}}"
max_connections_per_ip = 100000
`

// buildMxd builds cmd/mxd and cmd/mxq, polling for them up to b.mxdWait
// while another engineer is still writing them.
func (b *bench) buildMxd(ctx context.Context) error {
	b.mxd = filepath.Join(b.dir, "mxd")
	b.mxq = filepath.Join(b.dir, "mxq")
	build := func() error {
		if err := goBuild(ctx, b.mxd, "./cmd/mxd"); err != nil {
			return err
		}
		return goBuild(ctx, b.mxq, "./cmd/mxq")
	}
	err := build()
	if err == nil || b.mxdWait <= 0 {
		return err
	}
	b.logf("cmd/mxd does not build yet; polling for up to %s", b.mxdWait)
	deadline := time.Now().Add(b.mxdWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
		}
		if err = build(); err == nil {
			return nil
		}
	}
	return err
}

// startMxd builds and starts mxd with its own redis-server, and registers
// the bench recipient with mxq.
func (b *bench) startMxd(ctx context.Context) (*target, error) {
	if err := b.buildMxd(ctx); err != nil {
		return nil, err
	}
	dnsAddr, err := b.startDNS()
	if err != nil {
		return nil, err
	}
	redis, redisURL, err := b.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, b.mxq, "-redis", redisURL, "lists", "add", b.rcpt).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mxq lists add %s: %v: %s", b.rcpt, err, out)
	}
	var lastErr error
	for attempt := range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		mport, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := loopback(port)
		mxdRedis := redisURL
		if b.redisParams != "" {
			mxdRedis += "?" + b.redisParams
		}
		r := strings.NewReplacer("{{listen}}", addr, "{{domain}}", b.domain, "{{redis}}", mxdRedis, "{{metrics}}", loopback(mport), "{{dns}}", dnsAddr)
		conf := r.Replace(mxdConfig) + strings.Join(b.mxdSet, "\n") + "\n"
		confPath := filepath.Join(b.dir, fmt.Sprintf("mxd%d.toml", attempt))
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		p, err := startProc("mxd", filepath.Join(b.dir, fmt.Sprintf("mxd%d.log", attempt)), b.mxd, "-config", confPath)
		if err != nil {
			return nil, err
		}
		b.onExit(func() { p.stop(35 * time.Second) })
		if lastErr = waitFor(ctx, "mxd", 20*time.Second, procAlive(p), smtpReady(addr)); lastErr == nil {
			d, err := newDrainer(redisURL)
			if err != nil {
				return nil, err
			}
			b.onExit(func() { d.q.Close() })
			stop := func() { p.stop(35 * time.Second); redis.stop(10 * time.Second) }
			return &target{
				name: "mxd", addr: addr, stop: stop, memPid: p.pid(),
				pids:   []string{strconv.Itoa(p.pid()), strconv.Itoa(redis.pid())},
				settle: d.drain,
				// Every message answered 250 is either drained or still queued.
				depth: func() (int, error) {
					n, err := b.queueDepth(ctx, redisURL)
					return n + d.drained, err
				},
			}, nil
		}
		p.stop(time.Second)
	}
	return nil, lastErr
}

// queueDepth asks mxq how many entries are queued and not acknowledged.
func (b *bench) queueDepth(ctx context.Context, redisURL string) (int, error) {
	out, err := exec.CommandContext(ctx, b.mxq, "-redis", redisURL, "stats", "-json").Output()
	if err != nil {
		return 0, fmt.Errorf("mxq stats: %w", err)
	}
	var s struct {
		Depth int `json:"depth"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return 0, fmt.Errorf("mxq stats -json %q: %w", out, err)
	}
	return s.Depth, nil
}
