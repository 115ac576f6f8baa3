package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"mxq/queue"
)

// watchConsumer registers the counters of listd's consumer of the queue,
// read at each scrape. They and backlogCollector export the queue's
// state; the metrics of deliveries are package lists's (lists.Metrics).
func watchConsumer(reg prometheus.Registerer, c *queue.Consumer) {
	f := promauto.With(reg)
	unconfirmed := func(write string, n func(queue.ConsumerStats) int64) {
		f.NewCounterFunc(prometheus.CounterOpts{Name: "listd_unconfirmed_total",
			Help:        "Acknowledgements (write=ack) and recipient marks (write=recipient) that fewer than `replicas` replicas confirmed within replica_timeout; a failover before they reach one brings the message back.",
			ConstLabels: prometheus.Labels{"write": write}},
			func() float64 { return float64(n(c.Stats())) })
	}
	unconfirmed("ack", func(s queue.ConsumerStats) int64 { return s.UnconfirmedAcks })
	unconfirmed("recipient", func(s queue.ConsumerStats) int64 { return s.UnconfirmedMarks })
	f.NewCounterFunc(prometheus.CounterOpts{Name: "listd_taken_back_total",
		Help: "Entries pending to listd that no delivery held, read again after Redis failed (their acknowledgement, retry or release was lost or failed)."},
		func() float64 { return float64(c.Stats().TakenBack) })
}

// backlogCollector reads the queue's backlog at each scrape.
type backlogCollector struct{ q *queue.Queue }

var (
	depthDesc = prometheus.NewDesc("listd_queue_depth",
		"Messages not yet consumed: in the stream or waiting for a retry.", nil, nil)
	scheduledDesc = prometheus.NewDesc("listd_queue_scheduled",
		"Messages waiting for their next attempt.", nil, nil)
	pendingDesc = prometheus.NewDesc("listd_queue_pending",
		"Messages being delivered by some consumer.", nil, nil)
	deadDesc = prometheus.NewDesc("listd_queue_dead",
		"Messages in the dead-letter stream.", nil, nil)
	oldestDesc = prometheus.NewDesc("listd_queue_oldest_age_seconds",
		"Age of the message at the head of the stream (the one consumers reach first); 0 when the stream is empty.", nil, nil)
	upDesc = prometheus.NewDesc("listd_queue_up",
		"1 when the queue answered this scrape.", nil, nil)
)

func (b *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{depthDesc, scheduledDesc, pendingDesc, deadDesc, oldestDesc, upDesc} {
		ch <- d
	}
}

func (b *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Health, not Backlog: its commands cost the same at any depth, so
	// a scrape never holds Redis (Backlog reads every host's in-flight
	// set whole to find the oldest message: seconds at a million).
	h, err := b.q.Health(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(h.Depth))
	ch <- prometheus.MustNewConstMetric(scheduledDesc, prometheus.GaugeValue, float64(h.Retrying))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(h.Pending))
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(h.Dead))
	age := 0.0
	if !h.Head.IsZero() {
		age = max(time.Since(h.Head).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
