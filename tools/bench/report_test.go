package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	r := report{Results: map[string][]loadResult{
		"smtp-sink": {{Rate: 9000}, {Rate: 10000}, {Rate: 8000}},
		"postfix":   {{Rate: 700}, {Rate: 800}, {Rate: 600}},
		"mxd":       {{Rate: 4500}, {Rate: 3000}, {Rate: 4000}},
	}}
	r.summarize([]string{"smtp-sink", "postfix", "mxd"})
	wantMedian := map[string]float64{"smtp-sink": 9000, "postfix": 700, "mxd": 4000}
	for name, want := range wantMedian {
		if got := r.Median[name].Rate; got != want {
			t.Errorf("median %s = %v, want %v", name, got, want)
		}
	}
	wantRatios := map[string]float64{"mxd / smtp-sink": 4000.0 / 9000, "mxd / postfix": 4000.0 / 700}
	if diff := cmp.Diff(wantRatios, r.Ratios); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	wantRounds := []float64{4500.0 / 700, 3000.0 / 800, 4000.0 / 600}
	if diff := cmp.Diff(wantRounds, r.RoundRatios["mxd / postfix"]); diff != "" {
		t.Errorf("round ratios (-want +got):\n%s", diff)
	}
	out := printed(&r)
	reportHas(t, out, "mxd / smtp-sink", "0.44", "mxd / postfix", "5.71")
}

func TestSummarizeWithoutMxd(t *testing.T) {
	r := report{Results: map[string][]loadResult{"postfix": {{Rate: 700}}}}
	r.summarize([]string{"postfix"})
	if len(r.Ratios) != 0 {
		t.Errorf("ratios %v without mxd, want none", r.Ratios)
	}
}

func TestMixedSummary(t *testing.T) {
	lat := func(p99ms int64) latency { return latency{P99: p99ms * 1e6} }
	m := mixedReport{Small: "5000 messages of 10240 bytes", Big: "2000 messages of 8000000 bytes", Lead: "5s", Rounds: 3,
		Results: map[string][]mixedRound{"mxd": {
			{Alone: loadResult{Rate: 1751, Latency: lat(33)}, During: loadResult{Rate: 194, Latency: lat(1406)},
				Big: loadResult{Rate: 3, Codes: map[string]int{"data-end 451": 25}}},
			{Alone: loadResult{Rate: 1500, Latency: lat(40)}, During: loadResult{Rate: 250, Latency: lat(1000),
				PeakKiB: 1_000_000, InFlight: 240_102_400}, Big: loadResult{Rate: 4}},
			{Alone: loadResult{Rate: 2000, Latency: lat(30)}, During: loadResult{Rate: 150, Latency: lat(2000)},
				Big: loadResult{Rate: 2}, BigEndedEarly: true},
		}}}
	r := report{Mixed: &m}
	r.summarize([]string{"mxd"})
	s := m.Summary["mxd"]
	// Medians of each figure on its own: p99 alone 33, during 1406; rates
	// alone 1751, during 194.
	if want := 1406.0 / 33; s.P99Ratio != want {
		t.Errorf("p99 ratio %v, want %v", s.P99Ratio, want)
	}
	if want := 194.0 / 1751; s.RateRatio != want {
		t.Errorf("rate ratio %v, want %v", s.RateRatio, want)
	}
	if s.During.Rate != 194 || s.Big.Rate != 3 {
		t.Errorf("median rounds: during %v, big %v msgs/s; want 194, 3", s.During.Rate, s.Big.Rate)
	}
	out := printed(&r)
	reportHas(t, out,
		"mxd        alone      1751.0",
		"mxd        big           3.0",
		"    25     0  data-end 451: 25",
		"mxd: p99 during / alone 42.61 (target ≤ 3; rounds 42.61 25.00 66.67); msgs/s during / alone 0.11 (target ≥ 0.5; rounds 0.11 0.17 0.07)",
		"in round(s) 3; raise -big-n",
	)
	// The median round by rate during the load has no peak measured.
	if strings.Contains(out, "peak RSS") {
		t.Errorf("report shows a peak the median round does not have:\n%s", out)
	}
}

// reportHas fails t for each of wants that the report does not contain.
func reportHas(t *testing.T, report string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// printed is the report as print writes it.
func printed(r *report) string {
	var b bytes.Buffer
	r.print(&b)
	return b.String()
}

func TestReportTLS(t *testing.T) {
	conn := func(p50, p99 int64) *latency { return &latency{P50: p50 * 1e6, P99: p99 * 1e6} }
	r := report{Size: 10240, Load: "3000 messages of 10240 bytes over 50 sessions with PIPELINING, 1 per connection", Rounds: 1,
		Results: map[string][]loadResult{
			"smtp-sink":        {{Rate: 2600, Connection: conn(16, 38)}},
			"postfix-rsa":      {{Rate: 200, Latency: latency{P99: 25e6}, Connection: conn(220, 350)}},
			"mxd-rsa":          {{Rate: 700, Latency: latency{P99: 50e6}, Connection: conn(130, 230)}},
			"mxd-ecdsa":        {{Rate: 1050, Connection: conn(80, 170)}},
			"mxd-ecdsa-resume": {{Rate: 1100, Connection: conn(70, 160), TLS: &tlsCounts{Handshakes: 3000, Full: 2, Resumed: 2998, Versions: map[string]int{"TLS 1.3": 3000}}}},
		}}
	r.summarize([]string{"smtp-sink", "postfix-rsa", "mxd-rsa", "mxd-ecdsa", "mxd-ecdsa-resume"})
	want := map[string]float64{
		"mxd-rsa / postfix-rsa": 3.5, "mxd-rsa / smtp-sink": 700.0 / 2600, "mxd-ecdsa / smtp-sink": 1050.0 / 2600,
		"mxd-ecdsa / mxd-rsa": 1.5, "mxd-ecdsa-resume / mxd-ecdsa": 1100.0 / 1050,
	}
	if diff := cmp.Diff(want, r.Ratios); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	if got := r.P99Ratios["mxd-rsa / postfix-rsa"]; got != 2 {
		t.Errorf("p99 ratio %v, want 2", got)
	}
	reportHas(t, printed(&r),
		"conn p50  conn p99",
		"mxd-ecdsa-resume      1100",
		"    70.00    160.00",
		"mxd-ecdsa-resume TLS handshakes: 3000, 2 full, 2998 resumed (TLS 1.3: 3000)",
		"mxd-rsa / postfix-rsa          3.50  (msgs/s, median rounds; target ≥ 3); p99 2.00",
		"mxd-ecdsa / mxd-rsa            1.50  (msgs/s, median rounds; target ≥ 1.5)",
	)
}

func TestReportReplicas(t *testing.T) {
	r := report{Size: 10240, Rounds: 2, Results: map[string][]loadResult{
		"mxd":          {{Rate: 4000, Latency: latency{P99: 20e6}}, {Rate: 5000, Latency: latency{P99: 10e6}}},
		"mxd-replicas": {{Rate: 3000, Latency: latency{P99: 30e6}}, {Rate: 3500, Latency: latency{P99: 25e6}}},
	}}
	r.summarize([]string{"mxd", "mxd-replicas"})
	reportHas(t, printed(&r), "mxd-replicas / mxd   0.70  (msgs/s, median rounds; target ≥ 0.75)  round by round: 0.75 0.70; p99 2.50")
}
