package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// redisUse is what mxd's redis-server spent during one measured load:
// its CPU (from /proc, user and system, the AOF's writes and fsyncs
// included) and INFO commandstats, per MB of message data accepted.
type redisUse struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	SysSeconds float64 `json:"sys_seconds"`
	MB         float64 `json:"mb_accepted"` // messages answered 250 × their size, in MiB
	MsPerMB    float64 `json:"cpu_ms_per_mb"`
	// Commands is the time Redis spent inside each command (commandstats
	// usec), ms per MB; the rest of CPUSeconds is reading the commands,
	// writing the AOF and replies, and the kernel.
	Commands map[string]float64 `json:"command_ms_per_mb"`
	Calls    map[string]int64   `json:"command_calls"`
}

// redisRef is a reference: redis-benchmark's plain SET of Size bytes
// against the same redis-server, after the rounds. Keys is how many keys
// it writes: 1 (every SET replaces the one before, whose memory the next
// reuses) or new keys for every SET (the bytes stay, in memory Redis
// has to take from the kernel, as a queue's bodies stay until they are
// consumed).
type redisRef struct {
	Command    string  `json:"command"`
	NewKeys    bool    `json:"new_keys"`
	CPUSeconds float64 `json:"cpu_seconds"`
	MB         float64 `json:"mb"`
	MsPerMB    float64 `json:"cpu_ms_per_mb"`
	Elapsed    float64 `json:"elapsed_seconds"`
}

// refDB is the database the reference writes to and empties afterwards;
// the queue is in database 0.
const refDB = "9"

// redisSnap is a redis-server's CPU and commandstats at one moment.
type redisSnap struct {
	user, sys float64
	calls     map[string]int64
	usec      map[string]int64
}

// procCPU is the user and system CPU seconds of pid.
func procCPU(pid int) (user, sys float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	const clockTicks = 100 // USER_HZ on Linux
	return u / clockTicks, st / clockTicks, nil
}

// snapRedis reads the CPU and INFO commandstats of the redis-server pid
// listening on addr.
func snapRedis(addr string, pid int) (redisSnap, error) {
	s := redisSnap{calls: map[string]int64{}, usec: map[string]int64{}}
	var err error
	if s.user, s.sys, err = procCPU(pid); err != nil {
		return s, err
	}
	info, err := redisInfo(addr, "commandstats")
	if err != nil {
		return s, err
	}
	// cmdstat_rpush:calls=10,usec=2340,usec_per_call=234.00,...
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.calls[name] = n
			case "usec":
				s.usec[name] = n
			}
		}
	}
	return s, nil
}

// use is what Redis spent from before to s, for mb MiB stored.
func (s redisSnap) use(before redisSnap, mb float64) *redisUse {
	u := &redisUse{CPUSeconds: s.user + s.sys - before.user - before.sys, SysSeconds: s.sys - before.sys, MB: mb,
		Commands: map[string]float64{}, Calls: map[string]int64{}}
	if mb <= 0 {
		return u
	}
	u.MsPerMB = u.CPUSeconds * 1000 / mb
	for name, n := range s.calls {
		if d := n - before.calls[name]; d > 0 {
			u.Calls[name] = d
			u.Commands[name] = float64(s.usec[name]-before.usec[name]) / 1000 / mb
		}
	}
	return u
}

func (u *redisUse) String() string {
	names := make([]string, 0, len(u.Commands))
	for n := range u.Commands {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if u.Commands[a] != u.Commands[b] {
			if u.Commands[a] > u.Commands[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var cmds []string
	for _, n := range names {
		cmds = append(cmds, fmt.Sprintf("%s %.2f (%d calls)", n, u.Commands[n], u.Calls[n]))
	}
	return fmt.Sprintf("%.2f ms CPU per MB stored (%.1f s, of which system %.1f s, for %.0f MB); inside commands, ms per MB: %s",
		u.MsPerMB, u.CPUSeconds, u.SysSeconds, u.MB, strings.Join(cmds, ", "))
}

// referenceSet runs redis-benchmark's SET of size bytes, mb MiB of them
// from 2 clients, against the redis-server pid on addr (the one mxd
// used, with the same settings), and measures that server's CPU. The
// keys it wrote (in database refDB) are deleted afterwards.
func (b *bench) referenceSet(ctx context.Context, addr string, pid, size, mb int, newKeys bool) (*redisRef, error) {
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		return nil, fmt.Errorf("redis address %q", addr)
	}
	n := max(1, mb<<20/size)
	args := []string{"-h", host, "-p", port, "-t", "set", "-d", strconv.Itoa(size), "-c", "2", "-n", strconv.Itoa(n), "-q", "--dbnum", refDB}
	if newKeys {
		// Random keys out of 10^9: n of them are all new, but for a
		// collision in a million.
		args = append(args, "-r", "1000000000")
	}
	cmd := "redis-benchmark " + strings.Join(args, " ")
	b.logf("reference: %s", cmd)
	u0, s0, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "redis-benchmark", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", cmd, err, out)
	}
	elapsed := time.Since(start)
	u1, s1, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "-n", refDB, "FLUSHDB").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli FLUSHDB: %v: %s", err, out)
	}
	mbs := float64(n) * float64(size) / (1 << 20)
	r := &redisRef{Command: cmd, NewKeys: newKeys, CPUSeconds: u1 + s1 - u0 - s0, MB: mbs, Elapsed: elapsed.Seconds()}
	r.MsPerMB = r.CPUSeconds * 1000 / mbs
	b.logf("reference: %.2f ms of Redis CPU per MB (%.1f s for %.0f MB in %.1f s)", r.MsPerMB, r.CPUSeconds, mbs, r.Elapsed)
	return r, nil
}
