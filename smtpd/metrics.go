package smtpd

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	evictions    prometheus.Counter
	dataCuts     *prometheus.CounterVec
	spoolWriters prometheus.Gauge
	handshakes   *prometheus.CounterVec
	queueWaits   *prometheus.CounterVec
	queueWaiting prometheus.Gauge
	rideThrough  *prometheus.HistogramVec
	queueErrors  *prometheus.CounterVec
	handshakeDur prometheus.Histogram
	milter       *milterMetrics
	limits       *limitMetrics
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
	f := promauto.With(reg)
	return &Metrics{
		sessions: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_sessions", Help: "Open SMTP sessions.",
		}),
		accepted: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_sessions_accepted_total", Help: "Connections admitted to an SMTP session.",
		}),
		draining: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_draining", Help: "1 while this host drains (new connections get 421).",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_connections_refused_total", Help: "Connections answered 421 at connect, by reason.",
		}, []string{"reason"}),
		transactions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_transactions_total", Help: "Finished DATA transactions, by reply code class and code.",
		}, []string{"code"}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_received_bytes_total", Help: "Bytes of messages queued.",
		}),
		enqueue: f.NewHistogram(prometheus.HistogramOpts{
			Name: "mxd_enqueue_seconds", Help: "Time from end of data to the queue's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		budgetLimit: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_bytes", Help: "The bytes of message data sessions may hold in memory together (memory_budget).",
		}),
		budgetUsed: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_used_bytes", Help: "Bytes of message data held in memory now.",
		}),
		budgetWait: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_memory_budget_waiting_sessions", Help: "Sessions that stopped reading from their client until memory is free.",
		}),
		evictions: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_memory_evictions_total", Help: "Sessions made to give their memory back, while others waited for it, for holding more than they received in the last 5 s (451 4.3.2, closed).",
		}),
		dataCuts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_data_timeouts_total", Help: "DATA cut with 451 4.4.2, by reason: rate (below min_data_rate over data_rate_window) or data_timeout.",
		}, []string{"reason"}),
		spoolWriters: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_spool_writers", Help: "Sessions writing chunks of a big message to the queue now.",
		}),
		queueWaits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_queue_waits_total", Help: "Queue operations that found the queue briefly unavailable and waited for it (ride_through), by operation.",
		}, []string{"op"}),
		queueWaiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "mxd_queue_waiting_sessions", Help: "Sessions waiting now for the queue to be available again.",
		}),
		rideThrough: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mxd_queue_ride_through_seconds", Help: "How long an operation waited for the queue, by operation and outcome (ok, or gave_up: the sender got a 4xx).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 11),
		}, []string{"op", "outcome"}),
		queueErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_queue_errors_total", Help: "Queue failures answered to a sender (451 4.3.0, or 452 4.3.1 for oom), by operation and cause.",
		}, []string{"op", "cause"}),
		handshakes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_tls_handshakes_total", Help: "Completed STARTTLS handshakes, by TLS version and whether a session was resumed.",
		}, []string{"version", "resumed"}),
		handshakeDur: f.NewHistogram(prometheus.HistogramOpts{
			Name: "mxd_tls_handshake_seconds", Help: "Time from the ClientHello to the end of the server's part of a STARTTLS handshake.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
		limits: newLimitMetrics(reg),
		milter: newMilterMetrics(reg),
	}
}
