package main

import (
	"math"
	"slices"
	"time"
)

// A summary describes a set of latencies. Percentiles use the nearest-rank
// method: P50 is the smallest value with at least half of all values at or
// below it, so every reported value is one that was measured.
type summary struct {
	N    int           `json:"n"`
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
}

// summarize sorts d in place and describes it. An empty d gives a zero
// summary.
func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return summary{
		N:    len(d),
		Min:  d[0],
		Mean: sum / time.Duration(len(d)),
		P50:  percentile(d, 50),
		P90:  percentile(d, 90),
		P99:  percentile(d, 99),
		Max:  d[len(d)-1],
	}
}

// percentile returns the nearest-rank p-th percentile of sorted, which must
// not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// counts tallies outcomes by a key such as "data-end 250" or "rcpt 550".
type counts map[string]int

func (c counts) add(o counts) {
	for k, v := range o {
		c[k] += v
	}
}

// sortedKeys returns the keys of m in order, so reports are stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
