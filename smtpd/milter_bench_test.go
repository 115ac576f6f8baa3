package smtpd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"mxq/internal/rspamd"
)

// BenchmarkReceiveMilter is BenchmarkReceive's load (10 KiB messages,
// 8 pipelining sessions, a queue that keeps nothing) through mxd without
// a milter and with a real rspamd as its milter (started once, about
// 25 s). cpu-ms/msg is this process's CPU time per message (mxd and the
// load's client; rspamd is another process): the ratio of the two is
// what a milter costs mxd itself.
func BenchmarkReceiveMilter(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := rspamd.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	body := benchMessage(10 << 10)
	for _, tc := range []struct {
		name    string
		milters []string
	}{{"none", nil}, {"rspamd", []string{"inet:" + r.Addr}}, {"rspamd-unix", []string{"unix:" + r.Socket}}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxConnectionsPerIP = 1000 // all load from 127.0.0.1
			cfg.ConnectionRateLimit, cfg.MessageRateLimit, cfg.RecipientRateLimit = -1, -1, -1
			cfg.Milter.Milters = tc.milters
			srv, err := New(cfg, Deps{Queue: discardQueue{}, Recipients: NewRecipients(discardQueue{}, time.Hour),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			before := cpuTime()
			runReceive(b, func(l net.Listener) { srv.Serve(l) }, func() { srv.Close() }, body)
			b.ReportMetric(float64((cpuTime()-before).Microseconds())/1000/float64(b.N), "cpu-ms/msg")
		})
	}
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
