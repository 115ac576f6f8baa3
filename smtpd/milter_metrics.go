package smtpd

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// milterMetrics are the mxd_milter_* metrics.
type milterMetrics struct {
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	verdicts  *prometheus.CounterVec
	faults    *prometheus.CounterVec
	ignored   *prometheus.CounterVec
	replays   *prometheus.CounterVec
	discarded prometheus.Counter
	held      prometheus.Counter
	stages    sync.Map // stageKey → stageMetrics
}

func newMilterMetrics(reg prometheus.Registerer) *milterMetrics {
	f := promauto.With(reg)
	return &milterMetrics{
		calls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_milter_calls_total", Help: "Exchanges with each milter, by stage (connect, mail, rcpt, data, header, body, end).",
		}, []string{"milter", "stage"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mxd_milter_latency_seconds", Help: "Time a milter took to answer a stage (for body, each piece of the body as it passes: a few chunks of 64 KiB).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"milter", "stage"}),
		verdicts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_milter_verdicts_total", Help: "Decisions of each milter: accept, reject, tempfail, discard, quarantine; rcpt_reject and rcpt_tempfail for one recipient; default_* when the milter failed and its default_action applied.",
		}, []string{"milter", "verdict"}),
		faults: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_milter_faults_total", Help: "Milter failures, by kind: unavailable (no connection), busy (every connection in use), timeout, protocol (closed or nonsense).",
		}, []string{"milter", "kind"}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_milter_ignored_changes_total", Help: "Changes a milter asked for that mxd does not apply (body, sender, recipients, a bad header name).",
		}, []string{"milter", "change"}),
		replays: f.NewCounterVec(prometheus.CounterOpts{
			Name: "mxd_milter_replays_total", Help: "Messages sent again from their start on a new connection because the milter closed theirs (a restart), instead of its default action.",
		}, []string{"milter"}),
		discarded: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_milter_discarded_total", Help: "Messages a milter discarded: answered 250, not queued.",
		}),
		held: f.NewCounter(prometheus.CounterOpts{
			Name: "mxd_milter_held_total", Help: "Messages a milter quarantined: answered 250 and queued held, for mxq held release or purge.",
		}),
	}
}

// stage counts one exchange with a milter that began at t0.
func (m *milterMetrics) stage(milter, stage string, t0 time.Time) {
	key := stageKey{milter, stage}
	v, ok := m.stages.Load(key)
	if !ok {
		// WithLabelValues hashes and looks up the labels at every call;
		// a message passes each milter's stages once each.
		v, _ = m.stages.LoadOrStore(key, stageMetrics{m.calls.WithLabelValues(milter, stage), m.latency.WithLabelValues(milter, stage)})
	}
	sm := v.(stageMetrics)
	sm.calls.Inc()
	sm.latency.Observe(time.Since(t0).Seconds())
}

type stageKey struct{ milter, stage string }

// stageMetrics are the calls and latency of one milter at one stage.
type stageMetrics struct {
	calls   prometheus.Counter
	latency prometheus.Observer
}
