package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// modes are presets of flags; flags given on the command line win over
// them. The default run (no -mode) is the 10 KiB headline.
var modes = map[string][][2]string{
	// 8 MB messages over 100 sessions, mxd against Postfix.
	"big": {{"targets", "postfix,mxd"}, {"size", "8000000"}, {"n", "300"}, {"c", "100"},
		{"idle", "0"}, {"duration", "5m"}},
	// 10 KiB messages over 10 sessions alone, then while 30 sessions send
	// 8 MB messages to the same server.
	"mixed": {{"mixed", "true"}, {"targets", "mxd"}, {"size", "10240"}, {"n", "5000"}, {"c", "10"},
		{"big-size", "8000000"}, {"big-c", "30"}, {"big-n", "2000"}, {"idle", "0"}, {"duration", "2m"}},
	// 200 sessions of 16 MB messages at once: the memory they take.
	"burst": {{"targets", "mxd"}, {"size", "16000000"}, {"n", "200"}, {"c", "200"}, {"rounds", "1"},
		{"warmup", "0"}, {"idle", "0"}, {"duration", "5m"}},
	// Mail as the internet sends it: STARTTLS, one 10 KiB message per
	// connection, from 200 loopback addresses (so mxd keeps its default
	// per-address cap), Postfix and mxd with the same RSA 2048 and ECDSA
	// P-256 certificates, full handshakes and resumed ones; smtp-sink in
	// plaintext as the reference.
	"tls": {{"targets", "smtp-sink,postfix-rsa,postfix-ecdsa,mxd-rsa,mxd-ecdsa,mxd-rsa-resume,mxd-ecdsa-resume"},
		{"size", "10240"}, {"n", "3000"}, {"c", "50"}, {"per-conn", "1"}, {"source", "127.0.0.2-127.0.0.201"},
		{"warmup", "200"}, {"idle", "0"}, {"duration", "60s"}},
	// 10 KiB messages one at a time from one address while sessions
	// at the per-address cap from many others take memory and send
	// little: 2,400 whose header section never ends (128 KiB each;
	// 2,048 fill the default budget), or 4,400 that trickle their body
	// (64 KiB each; 4,096 fill it).
	"hold": {{"targets", "mxd"}, {"size", "10240"}, {"n", "300"}, {"c", "1"}, {"source", "127.0.0.2"},
		{"hold", "2400"}, {"hold-kind", "header"}, {"hold-source", "127.0.1.1-127.0.1.120"},
		{"idle", "0"}, {"rounds", "1"}, {"warmup", "20"}, {"duration", "5m"}},
	// 10 KiB messages through the same rspamd (a milter) in front of
	// Postfix and of mxd, and the two without it, in one run: unpaced,
	// and paced to the rate each reached with the milter.
	"rspamd": {{"targets", "postfix,postfix-rspamd,postfix-paced,mxd,mxd-rspamd,mxd-paced"}, {"size", "10240"}, {"n", "3000"}, {"c", "50"},
		{"idle", "0"}, {"duration", "3m"}},
	"hold-trickle": {{"targets", "mxd"}, {"size", "10240"}, {"n", "300"}, {"c", "1"}, {"source", "127.0.0.2"},
		{"hold", "4400"}, {"hold-kind", "trickle"}, {"hold-source", "127.0.1.1-127.0.1.220"},
		{"idle", "0"}, {"rounds", "1"}, {"warmup", "20"}, {"duration", "5m"}},
}

// applyMode sets the flags of mode that the command line did not set.
func applyMode(fs *flag.FlagSet, mode string) error {
	if mode == "" {
		return nil
	}
	preset, ok := modes[mode]
	if !ok {
		names := make([]string, 0, len(modes))
		for k := range modes {
			names = append(names, k)
		}
		slices.Sort(names)
		return fmt.Errorf("-mode: unknown mode %q (known: %s)", mode, strings.Join(names, ", "))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, kv := range preset {
		if !given[kv[0]] {
			if err := fs.Set(kv[0], kv[1]); err != nil {
				return fmt.Errorf("-mode %s: -%s %s: %w", mode, kv[0], kv[1], err)
			}
		}
	}
	return nil
}

// autoWarmup is the warm-up when -warmup is not given: 500 messages, but
// no more than 64 MiB of them (at least one), so that a warm-up of big
// messages starts the server's processes without being a round of its own.
func autoWarmup(size int) int {
	return min(500, max(1, (64<<20)/max(size, 1)))
}

// inFlight is the bytes a load holds in flight at once: its sessions, each
// with one message.
func (l loadArgs) inFlight() int64 { return int64(min(l.c, l.n)) * int64(l.size) }

// redisMaxmemory is the maxmemory of mxd's redis-server: 4 GiB, or twice
// the biggest round when that is more (a round is drained only at its
// end), but never more than half the machine's memory, so that Redis
// refuses writes before the machine runs out.
func redisMaxmemory(o options) int64 {
	const base = 4 << 30
	need := 2 * int64(o.load.n) * int64(o.load.size)
	if o.mixed {
		need += 2 * int64(o.big.n) * int64(o.big.size)
	}
	limit := int64(base)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if total, err := statusKiB(b, "MemTotal"); err == nil {
			limit = max(base, total*1024/2)
		}
	}
	return max(base, min(need, limit))
}
