package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// mixedReport is the outcome of -mixed: for each target and round, the
// measured load alone, the same load while a load of big messages runs
// against the same server, and that big load.
type mixedReport struct {
	Small   string                  `json:"small_load"`
	Big     string                  `json:"big_load"`
	Lead    string                  `json:"lead"` // the big load's head start
	Rounds  int                     `json:"rounds"`
	Results map[string][]mixedRound `json:"results"`
	Summary map[string]mixedSummary `json:"summary"`
}

type mixedRound struct {
	Alone  loadResult `json:"alone"`
	During loadResult `json:"during"`
	Big    loadResult `json:"big"`
	// BigEndedEarly is set when the big load had sent its -big-n messages
	// before the measured load ended: part of "during" ran alone.
	BigEndedEarly bool `json:"big_ended_early,omitempty"`
}

// mixedSummary holds each load's median round (by rate) and the ratios of
// the medians: the median p99 during the big load over the median p99
// alone, and the same for msgs/s.
type mixedSummary struct {
	Alone     loadResult `json:"alone"`
	During    loadResult `json:"during"`
	Big       loadResult `json:"big"`
	P99Ratio  float64    `json:"p99_during_over_alone"`
	RateRatio float64    `json:"rate_during_over_alone"`
}

// measureMixed warms every target up, then runs the mixed rounds,
// alternating between targets. It returns how many messages each server
// accepted.
func (b *bench) measureMixed(ctx context.Context, started []*target, o options, rep *mixedReport) (map[string]int, error) {
	rep.Results = map[string][]mixedRound{}
	accepted, err := b.warmup(ctx, started, o)
	if err != nil {
		return nil, err
	}
	for round := range o.rounds {
		for _, t := range started {
			b.logf("round %d/%d: %s, %s alone, then while %s", round+1, o.rounds, t.name, o.load, o.big)
			m, err := b.mixedRound(ctx, t, o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			rep.Results[t.name] = append(rep.Results[t.name], m)
			accepted[t.server] += m.Alone.Accepted + m.During.Accepted + m.Big.Accepted
		}
	}
	return accepted, nil
}

// mixedRound runs o.load alone, then again while o.big runs.
func (b *bench) mixedRound(ctx context.Context, t *target, o options) (mixedRound, error) {
	var m mixedRound
	peak, err := b.peak(t, func() (err error) {
		m.Alone, err = b.load(ctx, t, o.load, true)
		return err
	})
	if err != nil {
		return m, err
	}
	if peak > 0 {
		m.Alone.PeakKiB, m.Alone.InFlight = peak, o.load.inFlight()
	}
	peak, err = b.peak(t, func() error { return b.during(ctx, t, o, &m) })
	if err != nil {
		return m, err
	}
	if peak > 0 {
		m.During.PeakKiB, m.During.InFlight = peak, o.load.inFlight()+o.big.inFlight()
		b.logf("%s: peak RSS (VmHWM) %s for %s in flight", t.name, mb(peak*1024), mb(m.During.InFlight))
	}
	b.logf("%s during the big load: %.0f msgs/s, p50 %.1f ms, p99 %.1f ms, replies %v; big load: %.1f msgs/s, replies %v",
		t.name, m.During.Rate, ms(m.During.Latency.P50), ms(m.During.Latency.P99), m.During.Codes, m.Big.Rate, m.Big.Codes)
	return m, b.settle(ctx, t)
}

// during starts o.big against t, gives it o.lead, runs o.load, and stops
// the big load when o.load is done. The big load's transactions in
// progress are finished, so that its replies can be checked against the
// queue.
func (b *bench) during(ctx context.Context, t *target, o options, m *mixedRound) (err error) {
	if t.consume != nil && b.consumeDuring {
		stopConsumer := t.consume(ctx)
		defer func() {
			if cerr := stopConsumer(); cerr != nil && err == nil {
				err = fmt.Errorf("%s consumer: %w", t.name, cerr)
			}
		}()
	}
	type result struct {
		r   loadResult
		err error
	}
	stop := make(chan struct{})
	bigDone := make(chan result, 1)
	go func() {
		r, err := b.send(ctx, t, o.big, false, stop)
		bigDone <- result{r, err}
	}()
	var big *result
	select {
	case <-time.After(o.lead):
	case r := <-bigDone:
		big = &r
	}
	m.During, err = b.send(ctx, t, o.load, true, nil)
	if big == nil {
		select {
		case r := <-bigDone:
			big = &r
		default:
		}
	}
	if big != nil {
		m.BigEndedEarly = true
		b.logf("%s: the big load ended before the measured one (-big-n %d sent)", t.name, o.big.n)
	} else {
		close(stop)
		r := <-bigDone
		big = &r
	}
	m.Big = big.r
	if err != nil {
		return err
	}
	if big.err != nil {
		return fmt.Errorf("big load: %w", big.err)
	}
	return nil
}

// medianRound is the round with the median rate (the upper one of an even
// count).
func medianRound(rs []loadResult) loadResult {
	if len(rs) == 0 {
		return loadResult{}
	}
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].Rate < s[j].Rate })
	return s[len(s)/2]
}

// medianOf is the median of f over the rounds (the upper one of an even
// count).
func medianOf(rs []loadResult, f func(loadResult) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func rate(r loadResult) float64 { return r.Rate }
func p99(r loadResult) float64  { return float64(r.Latency.P99) }

func (m *mixedReport) summarize() {
	m.Summary = map[string]mixedSummary{}
	for name, rounds := range m.Results {
		var alone, during, big []loadResult
		for _, r := range rounds {
			alone, during, big = append(alone, r.Alone), append(during, r.During), append(big, r.Big)
		}
		s := mixedSummary{Alone: medianRound(alone), During: medianRound(during), Big: medianRound(big)}
		if a := medianOf(alone, p99); a > 0 {
			s.P99Ratio = medianOf(during, p99) / a
		}
		if a := medianOf(alone, rate); a > 0 {
			s.RateRatio = medianOf(during, rate) / a
		}
		m.Summary[name] = s
	}
}

func (m *mixedReport) print(w io.Writer, order []string) {
	fmt.Fprintf(w, "mixed: %s, alone and while %s runs (started %s before); median of %d round(s)\n\n", m.Small, m.Big, m.Lead, m.Rounds)
	fmt.Fprintf(w, "%-10s %-7s %9s %9s %9s %9s %5s %5s  %s\n", "target", "load", "msgs/s", "p50 ms", "p99 ms", "max ms", "4xx", "5xx", "replies")
	for _, name := range order {
		s, ok := m.Summary[name]
		if !ok {
			continue
		}
		for _, row := range []struct {
			label string
			r     loadResult
		}{{"alone", s.Alone}, {"during", s.During}, {"big", s.Big}} {
			temp, perm, _ := outcomes(row.r.Codes)
			fmt.Fprintf(w, "%-10s %-7s %9.1f %9.2f %9.2f %9.2f %5d %5d  %s\n", name, row.label, row.r.Rate,
				ms(row.r.Latency.P50), ms(row.r.Latency.P99), ms(row.r.Latency.Max), temp, perm, codesText(row.r.Codes))
		}
	}
	fmt.Fprintln(w)
	for _, name := range order {
		s, ok := m.Summary[name]
		if !ok {
			continue
		}
		var p99s, rates []string
		var early []string
		for i, r := range m.Results[name] {
			if r.Alone.Latency.P99 > 0 {
				p99s = append(p99s, fmt.Sprintf("%.2f", float64(r.During.Latency.P99)/float64(r.Alone.Latency.P99)))
			}
			if r.Alone.Rate > 0 {
				rates = append(rates, fmt.Sprintf("%.2f", r.During.Rate/r.Alone.Rate))
			}
			if r.BigEndedEarly {
				early = append(early, fmt.Sprint(i+1))
			}
		}
		fmt.Fprintf(w, "%s: p99 during / alone %.2f (target ≤ 3; rounds %s); msgs/s during / alone %.2f (target ≥ 0.5; rounds %s)\n",
			name, s.P99Ratio, strings.Join(p99s, " "), s.RateRatio, strings.Join(rates, " "))
		if line := peakText(name+" during the big load:", s.During, nil); line != "" {
			fmt.Fprintf(w, "%s; alone %s\n", line, mb(s.Alone.PeakKiB*1024))
		}
		if len(early) > 0 {
			fmt.Fprintf(w, "%s: the big load ended before the measured one in round(s) %s; raise -big-n\n", name, strings.Join(early, " "))
		}
	}
}
