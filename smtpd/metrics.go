package smtpd

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the receiver's Prometheus metrics.
type Metrics struct {
	sessions     prometheus.Gauge
	accepted     prometheus.Counter
	draining     prometheus.Gauge
	refused      *prometheus.CounterVec
	transactions *prometheus.CounterVec
	bytes        prometheus.Counter
	enqueue      prometheus.Histogram
	budgetLimit  prometheus.Gauge
	budgetUsed   prometheus.Gauge
	budgetWait   prometheus.Gauge
	spoolWriters prometheus.Gauge
	handshakes   *prometheus.CounterVec
	queueWaits   *prometheus.CounterVec
	queueWaiting prometheus.Gauge
	rideThrough  *prometheus.HistogramVec
	queueErrors  *prometheus.CounterVec
	handshakeDur prometheus.Histogram
}

// handshake counts one completed TLS handshake.
func (m *Metrics) handshake(cs tls.ConnectionState, d time.Duration) {
	resumed := "false"
	if cs.DidResume {
		resumed = "true"
	}
	m.handshakes.WithLabelValues(tls.VersionName(cs.Version), resumed).Inc()
	m.handshakeDur.Observe(d.Seconds())
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_sessions", Help: "Open SMTP sessions.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxd_sessions_accepted_total", Help: "Connections admitted to an SMTP session.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_draining", Help: "1 while this host drains (new connections get 421).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_connections_refused_total", Help: "Connections answered 421 at connect, by reason.",
		}, []string{"reason"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_transactions_total", Help: "Finished DATA transactions, by reply code class and code.",
		}, []string{"code"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxd_received_bytes_total", Help: "Bytes of messages queued.",
		}),
		enqueue: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mxd_enqueue_seconds", Help: "Time from end of data to the queue's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		budgetLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_bytes", Help: "The bytes of message data sessions may hold in memory together (memory_budget).",
		}),
		budgetUsed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_used_bytes", Help: "Bytes of message data held in memory now.",
		}),
		budgetWait: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_waiting_sessions", Help: "Sessions that stopped reading from their client until memory is free.",
		}),
		spoolWriters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_spool_writers", Help: "Sessions writing chunks of a big message to the queue now.",
		}),
		queueWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_queue_waits_total", Help: "Queue operations that found the queue briefly unavailable and waited for it (ride_through), by operation.",
		}, []string{"op"}),
		queueWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_queue_waiting_sessions", Help: "Sessions waiting now for the queue to be available again.",
		}),
		rideThrough: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mxd_queue_ride_through_seconds", Help: "How long an operation waited for the queue, by operation and outcome (ok, or gave_up: the sender got a 4xx).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 11),
		}, []string{"op", "outcome"}),
		queueErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_queue_errors_total", Help: "Queue failures answered to a sender (451 4.3.0, or 452 4.3.1 for oom), by operation and cause.",
		}, []string{"op", "cause"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_tls_handshakes_total", Help: "Completed STARTTLS handshakes, by TLS version and whether a session was resumed.",
		}, []string{"version", "resumed"}),
		handshakeDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mxd_tls_handshake_seconds", Help: "Time from the ClientHello to the end of the server's part of a STARTTLS handshake.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.accepted, m.draining, m.refused, m.transactions, m.bytes, m.enqueue,
			m.budgetLimit, m.budgetUsed, m.budgetWait, m.spoolWriters, m.handshakes, m.handshakeDur,
			m.queueWaits, m.queueWaiting, m.rideThrough, m.queueErrors)
	}
	return m
}
