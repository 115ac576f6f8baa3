package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// startRedis starts a redis-server as the queue needs it: AOF on with an
// fsync before every reply, no RDB snapshots, noeviction, b.maxmemory, and
// the AOF rewritten only once it has grown by 4 GB (docs/redis.md: with
// Redis's 64 MB default, big mail makes Redis rewrite its whole data set
// every few dozen messages). With replicas > 0 it also starts that many
// replicas of it (replicaof), set up alike but for their appendfsync
// (-replica-fsync), and waits until each is in sync. It returns the primary
// first.
func (b *bench) startRedis(ctx context.Context, name string, replicas int) ([]*proc, string, error) {
	var extra []string
	if replicas > 0 {
		// Sync a replica at once instead of waiting 5 s for more of them.
		extra = []string{"--repl-diskless-sync-delay", "0"}
	}
	primary, addr, err := b.startRedisServer(ctx, name, extra...)
	if err != nil {
		return nil, "", err
	}
	procs := []*proc{primary}
	for i := range replicas {
		p, raddr, err := b.startRedisServer(ctx, fmt.Sprintf("%s-replica%d", name, i+1), "--replicaof", "127.0.0.1", addr.port, "--appendfsync", b.replicaFsync)
		if err != nil {
			return nil, "", err
		}
		err = waitFor(ctx, "redis replica "+raddr.String(), 30*time.Second, procAlive(p), redisInSync(raddr.String()))
		if err != nil {
			return nil, "", err
		}
		procs = append(procs, p)
	}
	return procs, "redis://" + addr.String() + "/0", nil
}

type hostPort struct{ host, port string }

func (h hostPort) String() string { return net.JoinHostPort(h.host, h.port) }

// startRedisServer starts one redis-server in DIR/NAME, with extra
// arguments, on a free port.
func (b *bench) startRedisServer(ctx context.Context, name string, extra ...string) (*proc, hostPort, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, hostPort{}, err
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, hostPort{}, err
		}
		args := append([]string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--auto-aof-rewrite-min-size", "4gb",
			"--maxmemory", strconv.FormatInt(b.maxmemory, 10), "--maxmemory-policy", "noeviction", "--daemonize", "no"}, extra...)
		p, err := startProc("redis-server", filepath.Join(dir, "redis.log"), args...)
		if err != nil {
			return nil, hostPort{}, err
		}
		b.onExit(func() { p.stop(10 * time.Second) })
		addr := hostPort{"127.0.0.1", strconv.Itoa(port)}
		if lastErr = waitFor(ctx, "redis-server", 20*time.Second, procAlive(p), redisReady(addr.String())); lastErr == nil {
			return p, addr, nil
		}
		p.stop(time.Second)
	}
	return nil, hostPort{}, lastErr
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

// redisInSync fails until the replica at addr has its link to the primary
// up, the initial synchronisation done, and the AOF rewrite that follows
// it finished, so that the rewrite does not run during a measurement.
func redisInSync(addr string) func() error {
	return func() error {
		repl, err := redisInfo(addr, "replication")
		if err != nil {
			return err
		}
		if !strings.Contains(repl, "master_link_status:up") || strings.Contains(repl, "master_sync_in_progress:1") {
			return fmt.Errorf("replica %s not in sync yet", addr)
		}
		pers, err := redisInfo(addr, "persistence")
		if err != nil {
			return err
		}
		if strings.Contains(pers, "aof_rewrite_in_progress:1") || strings.Contains(pers, "aof_rewrite_scheduled:1") {
			return fmt.Errorf("replica %s still rewrites its AOF", addr)
		}
		return nil
	}
}

// redisInfo returns a section of INFO.
func redisInfo(addr, section string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "INFO %s\r\n", section)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil {
		return "", fmt.Errorf("INFO %s: %q", section, strings.TrimSpace(line))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// mxdServer is what differs between the mxd servers of a run.
type mxdServer struct {
	listen, redis, metrics, dns string
	// onePeer is set when all load comes from 127.0.0.1: the per-address
	// connection cap and the rate limits are then lifted, since real
	// traffic comes from many senders. With -source mxd keeps its
	// defaults.
	onePeer  bool
	cert     *certFiles // STARTTLS with this certificate
	replicas int        // replicas = N: every enqueue WAITs for them
	milter   string     // milters = [milter], when not empty
}

// mxdConfigFile is mxd's TOML for the bench: where to listen, its Redis,
// metrics and the bench's DNS server (startDNS), the settings s asks for,
// and mxd's defaults for everything else. Each of extra (-mxd-set) replaces
// the line of the same key, or is appended, so that no key is written twice.
func mxdConfigFile(s mxdServer, domain string, extra []string) string {
	lines := []string{
		`hostname = "mx-bench.invalid"`,
		fmt.Sprintf("listen = [%q]", s.listen),
		fmt.Sprintf("domains = [%q]", domain),
		fmt.Sprintf("authserv_id = %q", domain),
		fmt.Sprintf("redis = %q", s.redis),
		fmt.Sprintf("metrics_listen = %q", s.metrics),
		fmt.Sprintf("dns_resolver = %q", s.dns),
	}
	if s.onePeer {
		lines = append(lines, "max_connections_per_ip = 100000",
			"connection_rate_limit = -1", "message_rate_limit = -1", "recipient_rate_limit = -1")
	}
	if s.cert != nil {
		lines = append(lines, fmt.Sprintf("tls_cert = %q", s.cert.cert), fmt.Sprintf("tls_key = %q", s.cert.key))
	}
	if s.replicas > 0 {
		lines = append(lines, fmt.Sprintf("replicas = %d", s.replicas))
	}
	if s.milter != "" {
		lines = append(lines, fmt.Sprintf("milters = [%q]", s.milter))
	}
	for _, e := range extra {
		i := slices.IndexFunc(lines, func(l string) bool { return tomlKey(l) == tomlKey(e) })
		if i >= 0 {
			lines[i] = e
		} else {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// tomlKey is the key of a "key = value" line.
func tomlKey(line string) string {
	k, _, _ := strings.Cut(line, "=")
	return strings.TrimSpace(k)
}

// buildMxd builds cmd/mxd and cmd/mxq, polling for them up to b.mxdWait
// while another engineer is still writing them. Every mxd server of a run
// uses the same binaries: they are built for the first.
func (b *bench) buildMxd(ctx context.Context) error {
	if b.mxd != "" {
		return nil
	}
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

// startMxd starts the mxd binary bin with its own redis-server (and its
// replicas), and registers the bench recipient with mxq (buildMxd). name
// is the server's name in logs and file names.
func (b *bench) startMxd(ctx context.Context, name, bin string, cert *certFiles, replicas int, milter string) (*target, error) {
	dnsAddr, err := b.startDNS()
	if err != nil {
		return nil, err
	}
	redis, redisURL, err := b.startRedis(ctx, "redis-"+name, replicas)
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
		s := mxdServer{listen: addr, redis: mxdRedis, metrics: loopback(mport), dns: dnsAddr,
			onePeer: b.source == "", cert: cert, replicas: replicas, milter: milter}
		confPath := filepath.Join(b.dir, fmt.Sprintf("%s%d.toml", name, attempt))
		if err := os.WriteFile(confPath, []byte(mxdConfigFile(s, b.domain, b.mxdSet)), 0o644); err != nil {
			return nil, err
		}
		p, err := startProc(name, filepath.Join(b.dir, fmt.Sprintf("%s%d.log", name, attempt)), bin, "-config", confPath)
		if err != nil {
			return nil, err
		}
		b.onExit(func() { p.stop(35 * time.Second) })
		if lastErr = waitFor(ctx, name, 20*time.Second, procAlive(p), smtpReady(addr)); lastErr == nil {
			d, err := newDrainer(redisURL)
			if err != nil {
				return nil, err
			}
			b.onExit(func() { d.q.Close() })
			stop := func() {
				p.stop(35 * time.Second)
				for _, r := range redis {
					r.stop(10 * time.Second)
				}
			}
			pids := []string{strconv.Itoa(p.pid())}
			for _, r := range redis {
				pids = append(pids, strconv.Itoa(r.pid()))
			}
			return &target{
				name: name, addr: addr, stop: stop, memPid: p.pid(), pids: pids,
				settle:    d.drain,
				consume:   d.during,
				redisAddr: strings.TrimSuffix(strings.TrimPrefix(redisURL, "redis://"), "/0"), redisPid: redis[0].pid(),
				// Every message answered 250 is either drained or still queued.
				depth: func() (int, error) {
					n, err := b.queueDepth(ctx, redisURL)
					return n + int(d.drained.Load()), err
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

// buildRef builds cmd/mxd as of the commit b.mxdRef, from a copy of that
// commit's tree (git archive) in the run's directory.
func (b *bench) buildRef(ctx context.Context) (string, error) {
	src := filepath.Join(b.dir, "mxd-ref-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", b.mxdRef)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var errs strings.Builder
	archive.Stderr, extract.Stderr = &errs, &errs
	if err := extract.Start(); err != nil {
		return "", err
	}
	aerr := archive.Run()
	if err := extract.Wait(); aerr != nil || err != nil {
		return "", fmt.Errorf("git archive %s | tar -x: %v %v: %s", b.mxdRef, aerr, err, errs.String())
	}
	bin := filepath.Join(b.dir, "mxd-ref")
	return bin, goBuildIn(ctx, src, bin, "./cmd/mxd")
}
