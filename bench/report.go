package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// report is the outcome of a bench run.
type report struct {
	Date        string                  `json:"date"`
	Machine     string                  `json:"machine"`
	Load        string                  `json:"load"`
	Size        int                     `json:"size"` // of the load's messages
	Rounds      int                     `json:"rounds"`
	Results     map[string][]loadResult `json:"results"`      // every round
	Median      map[string]loadResult   `json:"median"`       // the round with the median rate
	Ratios      map[string]float64      `json:"ratios"`       // of the median rates
	RoundRatios map[string][]float64    `json:"round_ratios"` // mxd's rate over the other's, round by round
	Idle        *idleResult             `json:"idle_mxd,omitempty"`
	Checks      []string                `json:"checks,omitempty"`
	Budget      int64                   `json:"mxd_memory_budget,omitempty"` // -mxd-budget, bytes
	Mixed       *mixedReport            `json:"mixed,omitempty"`
	order       []string
}

func numCPU() int { return runtime.NumCPU() }

// summarize picks each target's median round and computes the ratios.
func (r *report) summarize(order []string) {
	r.order = order
	r.Median = map[string]loadResult{}
	for name, rs := range r.Results {
		r.Median[name] = medianRound(rs)
	}
	r.Ratios = map[string]float64{}
	if r.Mixed != nil {
		r.Mixed.summarize()
	}
	mxd, ok := r.Median["mxd"]
	if !ok {
		return
	}
	r.RoundRatios = map[string][]float64{}
	for _, other := range []string{"smtp-sink", "postfix"} {
		if o, ok := r.Median[other]; ok && o.Rate > 0 {
			r.Ratios["mxd / "+other] = mxd.Rate / o.Rate
			for i, m := range r.Results["mxd"] {
				if others := r.Results[other]; i < len(others) && others[i].Rate > 0 {
					r.RoundRatios["mxd / "+other] = append(r.RoundRatios["mxd / "+other], m.Rate/others[i].Rate)
				}
			}
		}
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n%s\n", r.Date, r.Machine)
	if r.Budget > 0 {
		fmt.Fprintf(w, "mxd memory_budget = %d (%s)\n", r.Budget, mb(r.Budget))
	}
	if r.Mixed != nil {
		r.Mixed.print(w, r.order)
	}
	if len(r.Results) > 0 {
		r.printRounds(w)
	}
	for _, c := range r.Checks {
		fmt.Fprintf(w, "\ncheck: %s", c)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w)
	}
	if r.Idle != nil {
		i := r.Idle
		fmt.Fprintf(w, "\nmxd idle connections: %d of %d open past EHLO, RSS %d → %d KiB: %.1f KiB per connection (target ≤ 64)",
			i.Opened, i.Requested, i.RSSBefore, i.RSSAfter, i.PerConnKiB)
		if len(i.Codes) > 0 {
			fmt.Fprintf(w, "; failures %s", codesText(i.Codes))
		}
		fmt.Fprintln(w)
	}
}

// printRounds prints the table of the median rounds, mxd's peak RSS and
// the ratios.
func (r *report) printRounds(w io.Writer) {
	fmt.Fprintf(w, "load: %s; median of %d round(s)\n\n", r.Load, r.Rounds)
	fmt.Fprintf(w, "%-10s %9s %9s %9s %9s %11s %12s %5s %5s  %s\n", "target", "msgs/s", "p50 ms", "p99 ms", "max ms", "CPU s/10k", "client s/10k", "4xx", "5xx", "replies")
	for _, name := range r.order {
		m, ok := r.Median[name]
		if !ok {
			continue
		}
		client := 0.0
		if m.Accepted > 0 {
			client = m.SelfCPU * 10000 / float64(m.Accepted)
		}
		temp, perm, _ := outcomes(m.Codes)
		fmt.Fprintf(w, "%-10s %9.0f %9.2f %9.2f %9.2f %11s %12.2f %5d %5d  %s\n", name, m.Rate,
			ms(m.Latency.P50), ms(m.Latency.P99), ms(m.Latency.Max), cpuText(m.CPU), client, temp, perm, codesText(m.Codes))
		if m.TimedOut {
			fmt.Fprintf(w, "%-10s (stopped by -duration: %d of the messages sent)\n", "", m.Attempted)
		}
	}
	for _, name := range r.order {
		m := r.Median[name]
		for _, c := range m.CPU {
			if len(c.ByName) > 1 {
				fmt.Fprintf(w, "%s CPU by process (s): %s\n", name, byNameText(c.ByName))
			}
		}
	}
	for _, name := range r.order {
		if line := peakText(name, r.Median[name], r.Results[name]); line != "" {
			fmt.Fprintln(w, line)
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w)
		for _, k := range []string{"mxd / smtp-sink", "mxd / postfix"} {
			if v, ok := r.Ratios[k]; ok {
				fmt.Fprintf(w, "%-16s %6.2f  (msgs/s, median rounds; target %s)", k, v, ratioTarget(k, r.Size))
				if rs := r.RoundRatios[k]; len(rs) > 1 {
					var parts []string
					for _, x := range rs {
						parts = append(parts, fmt.Sprintf("%.2f", x))
					}
					fmt.Fprintf(w, "  round by round: %s", strings.Join(parts, " "))
				}
				fmt.Fprintln(w)
			}
		}
	}
}

// ratioTarget is the goal for mxd's rate over another's: the 10 KiB
// headline's, or for messages of a megabyte and more, where throughput is
// the disk's and Redis's, the one for 8 MB messages.
func ratioTarget(ratio string, size int) string {
	if size >= 1<<20 {
		return map[string]string{"mxd / smtp-sink": "none", "mxd / postfix": "≥ 2"}[ratio]
	}
	return map[string]string{"mxd / smtp-sink": "≥ 0.5", "mxd / postfix": "≥ 5"}[ratio]
}

// outcomes counts the replies of a run that were not 250: 4xx, 5xx, and
// errors (the session failed without a reply: timeout, EOF, ...). codes is
// smtpload's table: "data-end 250", "rcpt 550", "error timeout".
func outcomes(codes map[string]int) (temp, perm, errs int) {
	for k, n := range codes {
		_, code, _ := strings.Cut(k, " ")
		c, err := strconv.Atoi(code)
		switch {
		case err != nil:
			errs += n
		case c/100 == 4:
			temp += n
		case c/100 == 5:
			perm += n
		}
	}
	return temp, perm, errs
}

// peakText is the line on a target's peak RSS next to the bytes in flight,
// for the median round and every round; "" when it was not measured.
func peakText(name string, median loadResult, rounds []loadResult) string {
	if median.PeakKiB == 0 {
		return ""
	}
	s := fmt.Sprintf("%s peak RSS (VmHWM) %s for %s in flight: %.2f× (median round)",
		name, mb(median.PeakKiB*1024), mb(median.InFlight), float64(median.PeakKiB*1024)/float64(median.InFlight))
	if len(rounds) > 1 {
		var parts []string
		for _, r := range rounds {
			parts = append(parts, thousands(int64(float64(r.PeakKiB*1024)/1e6+0.5)))
		}
		s += "; rounds " + strings.Join(parts, " ") + " MB"
	}
	return s
}

// cpuText is "1.23", or "1.23+0.45" for mxd and its redis-server.
func cpuText(cs []cpuUse) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%.2f", c.Per10k))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "+")
}

func codesText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func byNameText(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
