package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/lists"
	"mxq/queue"
)

// metrics are listd's Prometheus metrics.
type metrics struct {
	delivered, retried, dead, released, redelivered, left prometheus.Counter
	latency                                               prometheus.Histogram
	attempt                                               prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, q *queue.Queue) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_delivered_total",
			Help: "Messages delivered and acknowledged."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_retried_total",
			Help: "Attempts that failed temporarily; the message was scheduled for another attempt."}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_dead_lettered_total",
			Help: "Messages moved to the dead-letter stream."}),
		released: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_released_total",
			Help: "Deliveries interrupted by a stop and handed back to other consumers."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_redeliveries_total",
			Help: "Messages that came back after listd had acknowledged them (a failover lost the acknowledgement); acknowledged again, not delivered again."}),
		left: prometheus.NewCounter(prometheus.CounterOpts{Name: "listd_left_total",
			Help: "Entries handed back untouched because their record format is newer than this listd reads; a listd that reads it takes them over."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "listd_delivery_latency_seconds",
			Help:    "Time from the MX host's end of data (record.Arrived) to the acknowledgement.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 3*3600, 24)}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "listd_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt, whatever its outcome.",
			Buckets: prometheus.ExponentialBucketsRange(0.0005, 600, 20)}),
	}
	reg.MustRegister(m.delivered, m.retried, m.dead, m.released, m.redelivered, m.left, m.latency, m.attempt, &backlogCollector{q: q})
	return m
}

// watch registers the consumer's own counters.
func (m *metrics) watch(reg prometheus.Registerer, c *queue.Consumer) {
	unconfirmed := func(write string, n func(queue.ConsumerStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "listd_unconfirmed_total",
			Help:        "Acknowledgements (write=ack) and recipient marks (write=recipient) that fewer than `replicas` replicas confirmed within replica_timeout; a failover before they reach one brings the message back.",
			ConstLabels: prometheus.Labels{"write": write}},
			func() float64 { return float64(n(c.Stats())) })
	}
	reg.MustRegister(
		unconfirmed("ack", func(s queue.ConsumerStats) int64 { return s.UnconfirmedAcks }),
		unconfirmed("recipient", func(s queue.ConsumerStats) int64 { return s.UnconfirmedMarks }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "listd_taken_back_total",
			Help: "Entries pending to listd that no delivery held, read again after Redis failed (their acknowledgement, retry or release was lost or failed)."},
			func() float64 { return float64(c.Stats().TakenBack) }),
	)
}

// observe is the Consumer's Observe hook.
func (m *metrics) observe(r lists.Result) {
	m.attempt.Observe(r.Elapsed.Seconds())
	switch r.Outcome {
	case lists.Delivered:
		m.delivered.Inc()
		if r.Record != nil && !r.Record.Arrived.IsZero() {
			m.latency.Observe(time.Since(r.Record.Arrived).Seconds())
		}
	case lists.Retried:
		m.retried.Inc()
	case lists.Dead:
		m.dead.Inc()
	case lists.Released:
		m.released.Inc()
	case lists.Redelivered:
		m.redelivered.Inc()
	case lists.Left:
		m.left.Inc()
	}
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
