package promdash

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// scale is how values of a unit print at some magnitude: divided by div
// and followed by suffix (1.5 MiB is 1572864 over 1048576, " MiB").
type scale struct {
	div    float64
	suffix string
}

// The symbols of Grafana's rate units.
var rateSymbols = map[string]string{"ops": "ops/s", "reqps": "req/s", "rps": "rd/s", "wps": "wr/s", "iops": "io/s",
	"eps": "evt/s", "mps": "msg/s", "recps": "rec/s", "rowsps": "rows/s", "cps": "c/s"}

// unitScale chooses how to print values of unit around the magnitude mag.
func unitScale(unit string, mag float64) scale {
	mag = math.Abs(mag)
	switch unit {
	case "bytes":
		names := []string{" B", " KiB", " MiB", " GiB", " TiB", " PiB"}
		sc := scale{1, names[0]}
		for k := 1; k < len(names) && mag >= 1024*sc.div; k++ {
			sc = scale{sc.div * 1024, names[k]}
		}
		return sc
	case "s":
		switch {
		case mag > 0 && mag < 1:
			return scale{0.001, " ms"}
		case mag < 120:
			return scale{1, " s"}
		case mag < 2*3600:
			return scale{60, " min"}
		case mag < 2*86400:
			return scale{3600, " h"}
		}
		return scale{86400, " d"}
	case "ms":
		sc := unitScale("s", mag/1000)
		sc.div *= 1000
		return sc
	case "percentunit":
		return scale{0.01, "%"}
	case "percent":
		return scale{1, "%"}
	}
	sc := scale{1, ""}
	for _, s := range []scale{{1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}} {
		if mag >= s.div {
			sc = s
		}
	}
	if sym, ok := rateSymbols[unit]; ok {
		sc.suffix += " " + sym
	}
	return sc
}

// formatValue prints v in unit with about three significant digits.
func formatValue(unit string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	sc := unitScale(unit, v)
	x := v / sc.div
	digits := 2
	switch a := math.Abs(x); {
	case a >= 100:
		digits = 0
	case a >= 10:
		digits = 1
	}
	s := strconv.FormatFloat(x, 'f', digits, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return zero(s) + sc.suffix
}

// label prints the tick at v with as many decimals as the step needs. 0
// is in the unit's smallest scale, as Grafana prints it: 0, 0 B, 0 s.
func (a valueAxis) label(v float64) string {
	if v == 0 {
		return "0" + unitScale(a.unit, 0).suffix
	}
	decimals := max(0, min(6, int(-math.Floor(math.Log10(a.step/a.scale.div)+1e-9))))
	return zero(strconv.FormatFloat(v/a.scale.div, 'f', decimals, 64)) + a.scale.suffix
}

// zero drops the sign of a negative zero: "-0" and "-0.0" print as 0.
func zero(s string) string {
	if strings.Trim(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-")
	}
	return s
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch n := raw / mag; {
	case n <= 1:
		return mag
	case n <= 2:
		return 2 * mag
	case n <= 5:
		return 5 * mag
	}
	return 10 * mag
}

// valueAxis is a y axis: from lo to hi with a tick every step.
type valueAxis struct {
	unit         string
	lo, hi, step float64
	scale        scale
}

// newValueAxis covers values from lo to hi, and 0, in about n steps that
// are round in the unit's scale (200 MiB, 30 s, 5k).
func newValueAxis(unit string, lo, hi float64, n int) valueAxis {
	lo, hi = min(lo, 0), max(hi, 0)
	if hi == lo {
		hi = lo + 1
	}
	sc := unitScale(unit, max(math.Abs(lo), math.Abs(hi)))
	step := niceStep((hi-lo)/sc.div/float64(max(n, 1))) * sc.div
	return valueAxis{unit: unit, lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step, step: step, scale: sc}
}

func (a valueAxis) ticks() []float64 {
	var ts []float64
	for k := 0; ; k++ {
		v := a.lo + float64(k)*a.step
		if v > a.hi+a.step/2 {
			return ts
		}
		ts = append(ts, v)
	}
}

// The intervals time ticks are placed at, on multiples from the epoch.
var timeSteps = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// timeTicks returns at most n round times from start to end (fewer when
// the range is longer than n days).
func timeTicks(start, end time.Time, n int) []time.Time {
	span := end.Sub(start)
	iv := timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if span/s <= time.Duration(n) {
			iv = s
			break
		}
	}
	var ts []time.Time
	t := start.Truncate(iv)
	if t.Before(start) {
		t = t.Add(iv)
	}
	for ; !t.After(end) && len(ts) < n; t = t.Add(iv) {
		ts = append(ts, t)
	}
	return ts
}
