package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// BenchmarkScrape measures one scrape of mxq exporter against a queue of
// 1,000,000 messages from 4 MX hosts, a consumer group with 1,000 of them
// pending, and 10,000 waiting for a retry: the wall time of a collection,
// and what Redis spent on it (redis-µs/op, from INFO commandstats), which
// is the time every other client waited behind it. The reference is the
// same scrape of an empty queue: they should not differ by the depth.
// The backlog sub-benchmarks read queue.Backlog at the same depths, for
// comparison: what a gauge costs that finds the oldest message.
//
// The queue is filled directly with pipelined XADDs of small records in
// the stream layout of queue.Enqueue (v, id, rec) and the per-host
// accounting it keeps; bodies are left out, no scrape reads them.
func BenchmarkScrape(b *testing.B) {
	for _, depth := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			r := queuetest.StartRedis(b, queuetest.Config("appendonly no"))
			rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
			defer rdb.Close()
			ctx := context.Background()
			fill(b, ctx, rdb, depth)
			q, err := queue.Open(r.URL(), queue.DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			b.Run("exporter", func(b *testing.B) {
				reg := prometheus.NewRegistry()
				reg.MustRegister(&queueCollector{q: q, timeout: 5 * time.Second, idle: queue.DefaultReaderIdle})
				if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := reg.Gather(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(redisMicros(b, ctx, rdb)/float64(b.N), "redis-µs/op")
			})
			// queue.Backlog, for comparison: its oldest message comes
			// from every MX host's inflight set, read whole in one
			// script (listd's gauges read queue.Health for this reason).
			b.Run("backlog", func(b *testing.B) {
				if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := q.Backlog(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(redisMicros(b, ctx, rdb)/float64(b.N), "redis-µs/op")
			})
		})
	}
}

// fill writes n stream entries, their inflight accounting over 4 hosts,
// a consumer group that has read 1,000 of them and, when n is large
// enough, 10,000 retry entries.
func fill(b *testing.B, ctx context.Context, rdb *redis.Client, n int) {
	b.Helper()
	if n == 0 {
		return
	}
	start := time.Now()
	arrived := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	const batch = 10_000
	for i := 0; i < n; i += batch {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < min(i+batch, n); j++ {
				id := queue.NewID(time.Now())
				host := "mx" + strconv.Itoa(j%4) + ".example.org"
				rec := `{"id":"` + id + `","host":"` + host + `","from":"a@example.com","rcpts":[{"addr":"l@lists.example.org"}],"arrived":"` + arrived + `"}`
				p.XAdd(ctx, &redis.XAddArgs{Stream: "{mxq}:stream", Values: []any{"v", "2", "id", id, "rec", rec}})
				p.SAdd(ctx, "{mxq}:inflight:"+host, id)
				if j < 10_000 {
					p.ZAdd(ctx, "{mxq}:retry", redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "r" + id})
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for h := range 4 {
		host := "mx" + strconv.Itoa(h) + ".example.org"
		rdb.SAdd(ctx, "{mxq}:hosts", host)
		rdb.Set(ctx, "{mxq}:hb:"+host, `{"host":"`+host+`","sessions":3,"seen":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`, time.Hour)
	}
	if err := rdb.XGroupCreate(ctx, "{mxq}:stream", "listd", "0").Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "listd", Consumer: "c1", Streams: []string{"{mxq}:stream", ">"}, Count: 1000}).Err(); err != nil {
		b.Fatal(err)
	}
	mem, _ := rdb.Info(ctx, "memory").Result()
	for _, l := range strings.Split(mem, "\n") {
		if strings.HasPrefix(l, "used_memory_human:") {
			b.Logf("filled %d entries in %s, Redis %s", n, time.Since(start).Round(time.Millisecond), strings.TrimSpace(l))
		}
	}
}

// redisMicros is the time Redis spent in commands since CONFIG RESETSTAT.
func redisMicros(b *testing.B, ctx context.Context, rdb *redis.Client) float64 {
	b.Helper()
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, l := range strings.Split(s, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				total += n
			}
		}
	}
	return total
}
