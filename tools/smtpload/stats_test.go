package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ds(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"one value", ds(7), 50, 7 * time.Millisecond},
		{"one value p99", ds(7), 99, 7 * time.Millisecond},
		{"two values p50", ds(1, 2), 50, 1 * time.Millisecond},
		{"two values p99", ds(1, 2), 99, 2 * time.Millisecond},
		{"1..100 p50", ds(hundred...), 50, 50 * time.Millisecond},
		{"1..100 p99", ds(hundred...), 99, 99 * time.Millisecond},
		{"1..100 p100", ds(hundred...), 100, 100 * time.Millisecond},
		{"1..100 p0", ds(hundred...), 0, 1 * time.Millisecond},
		{"ten values p99", ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"ten values p90", ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"empty", nil, summary{}},
		{"unsorted", ds(5, 1, 3, 2, 4), summary{
			N: 5, Min: time.Millisecond, Mean: 3 * time.Millisecond, P50: 3 * time.Millisecond,
			P90: 5 * time.Millisecond, P99: 5 * time.Millisecond, Max: 5 * time.Millisecond,
		}},
		{"outlier", ds(1, 1, 1, 1, 1, 1, 1, 1, 1, 1000), summary{
			N: 10, Min: time.Millisecond, Mean: 100900 * time.Microsecond, P50: time.Millisecond,
			P90: time.Millisecond, P99: time.Second, Max: time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(tt.in)); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}
