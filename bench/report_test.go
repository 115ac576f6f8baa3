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
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"mxd / smtp-sink", "0.44", "mxd / postfix", "5.71"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSummarizeWithoutMxd(t *testing.T) {
	r := report{Results: map[string][]loadResult{"postfix": {{Rate: 700}}}}
	r.summarize([]string{"postfix"})
	if len(r.Ratios) != 0 {
		t.Errorf("ratios %v without mxd, want none", r.Ratios)
	}
}
