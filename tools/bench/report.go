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
	Ratios      map[string]float64      `json:"ratios"`       // of the median rates: "mxd / postfix", ratioPairs
	RoundRatios map[string][]float64    `json:"round_ratios"` // the same, round by round
	P99Ratios   map[string]float64      `json:"p99_ratios"`   // the median rounds' p99 (end of data to reply)
	// CPURatios are the servers' own CPU per message, num's over den's,
	// in the median rounds: cpuPairs.
	CPURatios map[string]float64 `json:"cpu_ratios,omitempty"`
	Idle      *idleResult        `json:"idle_mxd,omitempty"`
	Checks    []string           `json:"checks,omitempty"`
	Budget    int64              `json:"mxd_memory_budget,omitempty"` // -mxd-budget, bytes
	Mixed     *mixedReport       `json:"mixed,omitempty"`
	RedisRef  []*redisRef        `json:"redis_reference,omitempty"` // -redis-ref-size: one key, new keys
	order     []string
}

func numCPU() int { return runtime.NumCPU() }

// A ratioPair is a figure of the report: num's msgs/s over den's.
type ratioPair struct{ num, den, target string }

func (p ratioPair) String() string { return p.num + " / " + p.den }

// ratioPairs are the ratios the report gives, for the targets that ran:
// mxd against the references, and the TLS and replica variants against
// each other.
func ratioPairs(size int) []ratioPair {
	pairs := []ratioPair{
		{"mxd", "smtp-sink", ratioTarget("mxd / smtp-sink", size)},
		{"mxd", "postfix", ratioTarget("mxd / postfix", size)},
		{"mxd-replicas", "mxd", "≥ 0.75"},
		{"mxd", "mxd-ref", "≥ 1, no worse"},
	}
	for _, c := range []string{"rsa", "ecdsa"} {
		pairs = append(pairs,
			ratioPair{"mxd-" + c, "postfix-" + c, "≥ 3"},
			ratioPair{"mxd-" + c, "smtp-sink", "none"})
	}
	pairs = append(pairs, ratioPair{"mxd-ecdsa", "mxd-rsa", "≥ 1.5"}, ratioPair{"mxd-rspamd", "postfix-rspamd", "≥ 1"})
	for _, c := range []string{"rsa", "ecdsa"} {
		pairs = append(pairs,
			ratioPair{"mxd-" + c + "-resume", "mxd-" + c, "≥ 1.5"},
			ratioPair{"postfix-" + c + "-resume", "postfix-" + c, "none"})
	}
	return pairs
}

// cpuPairs are the ratios of the servers' own CPU per message (the first
// -pid of a target, the server without Redis or the milter): what a milter
// adds, against the same server without it unpaced and, fairer, paced to
// the same rate (CPU per message grows as the rate falls: fewer messages
// share each wake-up and each system call).
var cpuPairs = []ratioPair{
	{"mxd-rspamd", "mxd", "none: the rates differ"},
	{"mxd-rspamd", "mxd-paced", "≤ 1.3"},
	{"postfix-rspamd", "postfix", "none"},
	{"postfix-rspamd", "postfix-paced", "none"},
}

// serverCPU is a run's CPU seconds per 10,000 messages of the server
// itself, 0 when not measured.
func serverCPU(m loadResult) float64 {
	if len(m.CPU) == 0 {
		return 0
	}
	return m.CPU[0].Per10k
}

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
	for _, p := range cpuPairs {
		num, den := serverCPU(r.Median[p.num]), serverCPU(r.Median[p.den])
		if num > 0 && den > 0 {
			if r.CPURatios == nil {
				r.CPURatios = map[string]float64{}
			}
			r.CPURatios[p.String()] = num / den
		}
	}
	for _, p := range ratioPairs(r.Size) {
		num, ok1 := r.Median[p.num]
		den, ok2 := r.Median[p.den]
		if !ok1 || !ok2 || den.Rate <= 0 {
			continue
		}
		k := p.String()
		r.Ratios[k] = num.Rate / den.Rate
		if den.Latency.P99 > 0 && num.Latency.P99 > 0 {
			if r.P99Ratios == nil {
				r.P99Ratios = map[string]float64{}
			}
			r.P99Ratios[k] = float64(num.Latency.P99) / float64(den.Latency.P99)
		}
		for i, m := range r.Results[p.num] {
			if others := r.Results[p.den]; i < len(others) && others[i].Rate > 0 {
				if r.RoundRatios == nil {
					r.RoundRatios = map[string][]float64{}
				}
				r.RoundRatios[k] = append(r.RoundRatios[k], m.Rate/others[i].Rate)
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
	width, conns := 10, false
	for _, name := range r.order {
		width = max(width, len(name))
		conns = conns || r.Median[name].Connection != nil
	}
	connHead := ""
	if conns {
		connHead = fmt.Sprintf(" %9s %9s", "conn p50", "conn p99")
	}
	fmt.Fprintf(w, "%-*s %9s %9s %9s %9s%s %11s %12s %5s %5s  %s\n", width, "target", "msgs/s", "p50 ms", "p99 ms", "max ms", connHead, "CPU s/10k", "client s/10k", "4xx", "5xx", "replies")
	for _, name := range r.order {
		m, ok := r.Median[name]
		if !ok {
			continue
		}
		client := 0.0
		if m.Accepted > 0 {
			client = m.SelfCPU * 10000 / float64(m.Accepted)
		}
		connCols := ""
		if c := m.Connection; c != nil {
			connCols = fmt.Sprintf(" %9.2f %9.2f", ms(c.P50), ms(c.P99))
		} else if conns {
			connCols = fmt.Sprintf(" %9s %9s", "-", "-")
		}
		temp, perm, _ := outcomes(m.Codes)
		fmt.Fprintf(w, "%-*s %9.0f %9.2f %9.2f %9.2f%s %11s %12.2f %5d %5d  %s\n", width, name, m.Rate,
			ms(m.Latency.P50), ms(m.Latency.P99), ms(m.Latency.Max), connCols, cpuText(m.CPU), client, temp, perm, codesText(m.Codes))
		if m.TimedOut {
			fmt.Fprintf(w, "%-*s (stopped by -duration: %d of the messages sent)\n", width, "", m.Attempted)
		}
	}
	if conns {
		fmt.Fprintln(w, "(conn: the whole connection, from the connect to the 221 reply to QUIT, ms)")
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
		if t := r.Median[name].TLS; t != nil {
			fmt.Fprintf(w, "%s TLS handshakes: %d, %d full, %d resumed (%s)\n", name, t.Handshakes, t.Full, t.Resumed, codesText(t.Versions))
		}
	}
	for _, name := range r.order {
		if h := r.Median[name].Hold; h != nil {
			fmt.Fprintf(w, "%s while held: %s\n", name, h)
		}
	}
	for _, name := range r.order {
		if line := peakText(name, r.Median[name], r.Results[name]); line != "" {
			fmt.Fprintln(w, line)
		}
	}
	r.printRedis(w)
	r.printRatios(w)
}

func refKeys(r *redisRef) string {
	if r.NewKeys {
		return "new keys: the bytes stay"
	}
	return "one key: its memory reused"
}

// printRedis prints the Redis CPU per MB of each target that has its own
// redis-server, against the reference SET when it ran.
func (r *report) printRedis(w io.Writer) {
	for _, name := range r.order {
		u := r.Median[name].Redis
		if u == nil {
			continue
		}
		fmt.Fprintf(w, "%s redis-server: %s\n", name, u)
		for _, ref := range r.RedisRef {
			if ref.MsPerMB > 0 {
				fmt.Fprintf(w, "%s redis-server CPU per MB / reference SET (%s): %.2f\n", name, refKeys(ref), u.MsPerMB/ref.MsPerMB)
			}
		}
	}
	for _, ref := range r.RedisRef {
		fmt.Fprintf(w, "reference SET (%s), %s on the first mxd's redis-server: %.2f ms CPU per MB (%.1f s for %.0f MB in %.1f s)\n",
			refKeys(ref), ref.Command, ref.MsPerMB, ref.CPUSeconds, ref.MB, ref.Elapsed)
	}
}

// printRatios prints the ratios of the median rounds' rates, with the
// rounds' own and the ratio of the p99s.
func (r *report) printRatios(w io.Writer) {
	for _, p := range cpuPairs {
		if v, ok := r.CPURatios[p.String()]; ok {
			fmt.Fprintf(w, "\nown CPU per message, %s: %.2f (%.2f / %.2f s/10k; target %s)", p, v,
				serverCPU(r.Median[p.num]), serverCPU(r.Median[p.den]), p.target)
		}
	}
	if len(r.CPURatios) > 0 {
		fmt.Fprintln(w)
	}
	if len(r.Ratios) == 0 {
		return
	}
	fmt.Fprintln(w)
	width := 16
	for k := range r.Ratios {
		width = max(width, len(k))
	}
	for _, p := range ratioPairs(r.Size) {
		k := p.String()
		v, ok := r.Ratios[k]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-*s %6.2f  (msgs/s, median rounds; target %s)", width, k, v, p.target)
		if rs := r.RoundRatios[k]; len(rs) > 1 {
			var parts []string
			for _, x := range rs {
				parts = append(parts, fmt.Sprintf("%.2f", x))
			}
			fmt.Fprintf(w, "  round by round: %s", strings.Join(parts, " "))
		}
		if v, ok := r.P99Ratios[k]; ok {
			fmt.Fprintf(w, "; p99 %.2f", v)
		}
		fmt.Fprintln(w)
	}
}

// ratioTarget is the goal for mxd's rate over another's: the 10 KiB
// headline's, or for messages of a megabyte and more, where throughput is
// the disk's and Redis's, the one for 8 MB messages.
func ratioTarget(ratio string, size int) string {
	if size >= 1<<20 {
		return map[string]string{"mxd / smtp-sink": "none", "mxd / postfix": "≥ 1.5"}[ratio]
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
