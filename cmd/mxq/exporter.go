package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/cmd/internal/daemon"
	"mxq/queue"
	"mxq/redisha"
)

// exporter serves the queue's state as Prometheus metrics until ctx ends.
// One runs per installation (docs/operations.md says why here and not in
// mxd or listd): the queue is shared, so a gauge exported by every MX host
// or every consumer would be summed wrong.
func exporter(ctx context.Context, q *queue.Queue, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9442", "`address` to serve /metrics and /healthz on")
	timeout := fs.Duration("timeout", 5*time.Second, "the most one scrape waits for Redis; the scrape then reports mxq_queue_up 0")
	idle := fs.Duration("reader-idle", queue.DefaultReaderIdle, "count a consumer in mxq_consumers_alive until it has been unseen this long, as mxd's reader_idle does")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("exporter: unexpected argument %q", fs.Arg(0))}
	}
	reg := daemon.NewRegistry()
	reg.MustRegister(&queueCollector{q: q, timeout: *timeout, idle: *idle})
	m, err := daemon.ListenMetrics(*listen, reg, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if _, err := q.Depth(ctx); err != nil {
			return fmt.Errorf("queue unavailable")
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(stderr, "serving metrics on http://%s/metrics\n", m.Addr())
	errc := make(chan error, 1)
	go m.Serve(errc)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// queueCollector reads the queue's state from Redis at each scrape.
type queueCollector struct {
	q       *queue.Queue
	timeout time.Duration
	// idle is how long a consumer may go unseen and count as alive.
	idle time.Duration
}

func gauge(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	upDesc        = gauge("mxq_queue_up", "1 when Redis answered this scrape; the other queue metrics are absent when 0.")
	depthDesc     = gauge("mxq_queue_depth", "Messages queued and not yet acknowledged: in the stream or waiting for a retry.")
	pendingDesc   = gauge("mxq_queue_pending", "Messages read by a consumer and not yet settled.")
	retryingDesc  = gauge("mxq_queue_retrying", "Messages waiting for their next delivery attempt.")
	deadDesc      = gauge("mxq_queue_dead", "Messages in the dead-letter stream.")
	heldDesc      = gauge("mxq_queue_held", "Messages held by a content filter's quarantine (mxq held ls), not in mxq_queue_depth: no consumer reads them until released.")
	oldestDesc    = gauge("mxq_queue_oldest_age_seconds", "Age since arrival of the message at the head of the stream, the one consumers reach first; 0 when the stream is empty.")
	consumersDesc = gauge("mxq_consumers_alive", "Consumers seen within -reader-idle (a minute), over every group.")
	hostUpDesc    = gauge("mxq_host_up", "1 while the MX host's heartbeat has not expired; 0 for a host seen before whose heartbeat is gone.", "host")
	hbAgeDesc     = gauge("mxq_host_heartbeat_age_seconds", "Time since the MX host's last heartbeat; absent when it has expired.", "host")
	sessionsDesc  = gauge("mxq_host_sessions", "SMTP sessions open on the MX host, as its last heartbeat said.", "host")
	inflightDesc  = gauge("mxq_host_unconsumed", "Messages the MX host accepted that no consumer has acknowledged yet.", "host")
	drainingDesc  = gauge("mxq_host_draining", "1 while the MX host's drain flag is set (dnsctl drain or maintain): it is taken out of DNS on purpose.", "host")
	drainAgeDesc  = gauge("mxq_host_draining_seconds", "How long the MX host's drain flag has been set; 0 when it is not.", "host")
	memUsedDesc   = gauge("mxq_redis_memory_used_bytes", "Redis used_memory.")
	memMaxDesc    = gauge("mxq_redis_memory_max_bytes", "Redis maxmemory; 0 when unlimited.")
	cpuDesc       = gauge("mxq_redis_cpu_seconds_total", "CPU time, user and system, of Redis's main thread, the one that runs every command, since the server started; its rate is the fraction of a core the queue takes.")
	primaryDesc   = gauge("mxq_redis_primary", "1 for the server the queue writes to, named as most sentinels name it (or the URL's server), with its own role.", "addr", "role")
	replicasDesc  = gauge("mxq_redis_replicas", "Replicas connected to the primary.")
	lagDesc       = gauge("mxq_redis_replica_lag_seconds", "Time since the replica's last acknowledgement to the primary.", "replica")
	behindDesc    = gauge("mxq_redis_replica_behind_bytes", "Bytes of writes the replica had not acknowledged.", "replica")
	sentinelDesc  = gauge("mxq_redis_sentinel_up", "1 when the sentinel answered and names a primary.", "sentinel")
	scrapeDesc    = gauge("mxq_exporter_scrape_duration_seconds", "Time this scrape spent reading Redis.")
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, depthDesc, pendingDesc, retryingDesc, deadDesc, heldDesc, oldestDesc, consumersDesc,
		hostUpDesc, hbAgeDesc, sessionsDesc, inflightDesc, drainingDesc, drainAgeDesc, memUsedDesc, memMaxDesc, cpuDesc,
		primaryDesc, replicasDesc, lagDesc, behindDesc, sentinelDesc, scrapeDesc} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	defer func() {
		ch <- prometheus.MustNewConstMetric(scrapeDesc, prometheus.GaugeValue, time.Since(start).Seconds())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	h, err := c.q.Health(ctx)
	var readers []queue.Reader
	if err == nil {
		readers, err = c.q.Readers(ctx, c.idle)
	}
	var repl *redisha.Replication
	if err == nil {
		repl, err = c.q.Redis().Replication(ctx)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	now := time.Now()
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return max(now.Sub(t).Seconds(), 0)
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g(upDesc, 1)
	g(depthDesc, float64(h.Depth))
	g(pendingDesc, float64(h.Pending))
	g(retryingDesc, float64(h.Retrying))
	g(deadDesc, float64(h.Dead))
	g(heldDesc, float64(h.Held))
	g(oldestDesc, age(h.Head))
	alive := 0
	for _, r := range readers {
		if r.Live {
			alive++
		}
	}
	g(consumersDesc, float64(alive))
	for _, hh := range h.Hosts {
		g(hostUpDesc, b(hh.Alive), hh.Host)
		if hh.Alive {
			g(hbAgeDesc, age(hh.Seen), hh.Host)
		}
		g(sessionsDesc, float64(hh.Sessions), hh.Host)
		g(inflightDesc, float64(hh.Inflight), hh.Host)
		g(drainingDesc, b(hh.Draining), hh.Host)
		drain := 0.0
		if hh.Draining {
			drain = age(hh.DrainSince)
		}
		g(drainAgeDesc, drain, hh.Host)
	}
	g(memUsedDesc, float64(h.UsedMemory))
	g(memMaxDesc, float64(h.MaxMemory))
	ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.CounterValue, h.CPUSeconds)
	g(primaryDesc, 1, repl.Primary, repl.Role)
	g(replicasDesc, float64(len(repl.Replicas)))
	for _, r := range repl.Replicas {
		g(lagDesc, float64(r.LagSeconds), r.Addr)
		g(behindDesc, float64(r.Behind), r.Addr)
	}
	for _, s := range repl.Sentinels {
		g(sentinelDesc, b(s.Err == "" && s.Primary != ""), s.Addr)
	}
}
