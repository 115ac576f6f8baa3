package lists

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"mxq/queue"
)

// Each outcome counts in its own counter; every attempt in the duration,
// the delivered in the latency.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	arrived := &queue.Record{Arrived: time.Now().Add(-time.Second)}
	for _, o := range []Outcome{Delivered, Delivered, Retried, Dead, Released, Redelivered, Left} {
		m.Observe(Result{Record: arrived, Outcome: o, Elapsed: time.Millisecond})
	}
	m.Observe(Result{Outcome: Delivered}) // no record: no latency
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			if h := x.GetHistogram(); h != nil {
				got[mf.GetName()] = float64(h.GetSampleCount())
			} else {
				got[mf.GetName()] = x.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"listd_delivered_total":          3,
		"listd_retried_total":            1,
		"listd_dead_lettered_total":      1,
		"listd_released_total":           1,
		"listd_redeliveries_total":       1,
		"listd_left_total":               1,
		"listd_attempt_duration_seconds": 8,
		"listd_delivery_latency_seconds": 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
