package lists

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the Prometheus metrics of deliveries: attempts by outcome,
// their duration, and the latency of the delivered. Observe is the
// Consumer's Observe hook that counts them.
type Metrics struct {
	delivered, retried, dead, released, redelivered, left prometheus.Counter
	latency                                               prometheus.Histogram
	attempt                                               prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		delivered: f.NewCounter(prometheus.CounterOpts{Name: "listd_delivered_total",
			Help: "Messages delivered and acknowledged."}),
		retried: f.NewCounter(prometheus.CounterOpts{Name: "listd_retried_total",
			Help: "Attempts that failed temporarily; the message was scheduled for another attempt."}),
		dead: f.NewCounter(prometheus.CounterOpts{Name: "listd_dead_lettered_total",
			Help: "Messages moved to the dead-letter stream."}),
		released: f.NewCounter(prometheus.CounterOpts{Name: "listd_released_total",
			Help: "Deliveries interrupted by a stop and handed back to other consumers."}),
		redelivered: f.NewCounter(prometheus.CounterOpts{Name: "listd_redeliveries_total",
			Help: "Messages that came back after listd had acknowledged them (a failover lost the acknowledgement); acknowledged again, not delivered again."}),
		left: f.NewCounter(prometheus.CounterOpts{Name: "listd_left_total",
			Help: "Entries handed back untouched because their record format is newer than this listd reads; a listd that reads it takes them over."}),
		latency: f.NewHistogram(prometheus.HistogramOpts{Name: "listd_delivery_latency_seconds",
			Help:    "Time from the MX host's end of data (record.Arrived) to the acknowledgement.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 3*3600, 24)}),
		attempt: f.NewHistogram(prometheus.HistogramOpts{Name: "listd_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt, whatever its outcome.",
			Buckets: prometheus.ExponentialBucketsRange(0.0005, 600, 20)}),
	}
}

// Observe counts one attempt: give it to Consumer.Observe.
func (m *Metrics) Observe(r Result) {
	m.attempt.Observe(r.Elapsed.Seconds())
	switch r.Outcome {
	case Delivered:
		m.delivered.Inc()
		if r.Record != nil && !r.Record.Arrived.IsZero() {
			m.latency.Observe(time.Since(r.Record.Arrived).Seconds())
		}
	case Retried:
		m.retried.Inc()
	case Dead:
		m.dead.Inc()
	case Released:
		m.released.Inc()
	case Redelivered:
		m.redelivered.Inc()
	case Left:
		m.left.Inc()
	}
}
