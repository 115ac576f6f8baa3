package promdash

import (
	"math"
	"strconv"
	"strings"
	"time"
)

const (
	legendRow   = 15 // pixels per line of legend
	markRow     = 11 // pixels per line of mark labels
	maxMarkRows = 3
)

// timeseries draws a line per series (broken where samples are missing),
// the axes, the thresholds if the panel shows them, the marks and the
// legend.
func (r *renderer) timeseries(i int, p Panel, series []Series, b box) {
	legend, legendH := layoutLegend(series, b)
	right := b.x + b.w - 12
	marks := r.sortedMarks()
	// The labels' rows are counted with the widest left margin likely; the
	// count only reserves room above the plot.
	_, markRows := placeLabels(marks, r.timeX(b.x+64, right), maxMarkRows)
	top := b.y + 28 + float64(markRows*markRow)
	bottom := b.y + b.h - legendH - 20
	lo, hi, ok := valueRange(series)
	axis := newValueAxis(p.Unit, lo, hi, max(2, int((bottom-top)/45)))
	left := b.x + 8
	if ok {
		for _, v := range axis.ticks() {
			left = max(left, b.x+8+textWidth(axis.label(v), 10)+6)
		}
	}
	x := r.timeX(left, right)
	y := func(v float64) float64 { return bottom - (v-axis.lo)/(axis.hi-axis.lo)*(bottom-top) }

	for _, t := range timeTicks(r.start, r.end, max(2, int((right-left)/90))) {
		r.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", f1(x(t)), f1(top), f1(x(t)), f1(bottom), gridLine)
		label := t.In(r.loc).Format("15:04:05")
		if half := textWidth(label, 10) / 2; x(t)-half >= b.x+2 && x(t)+half <= b.x+b.w-2 {
			r.text(x(t), bottom+14, 10, dimText, "middle", "", label)
		}
	}
	if !ok {
		r.text((left+right)/2, (top+bottom)/2+6, 16, dimText, "middle", "", "no data")
	} else {
		for _, v := range axis.ticks() {
			r.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", f1(left), f1(y(v)), f1(right), f1(y(v)), gridLine)
			r.text(left-6, y(v)+3.5, 10, dimText, "end", "", axis.label(v))
		}
		r.printf(`<clipPath id="plot-%d"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>`+"\n",
			i+1, f1(left), f1(top-1), f1(right-left), f1(bottom-top+2))
		r.printf(`<g clip-path="url(#plot-%d)" fill="none" stroke-width="1.5" stroke-linejoin="round">`+"\n", i+1)
		if p.ThresholdLines {
			for _, t := range p.Thresholds {
				if finite(t.Value) && t.Value >= axis.lo && t.Value <= axis.hi {
					r.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-dasharray="6 4" stroke-width="1"/>`+"\n",
						f1(left), f1(y(t.Value)), f1(right), f1(y(t.Value)), color(t.Color))
				}
			}
		}
		for j, s := range series {
			r.line(s.Points, palette[j%len(palette)], x, y)
		}
		r.printf("</g>\n")
	}
	rows, _ := placeLabels(marks, x, markRows)
	for k, m := range marks {
		mx := x(m.T)
		r.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-dasharray="4 3"/>`+"\n", f1(mx), f1(top-2), f1(mx), f1(bottom), markColor)
		ly := b.y + 28 + float64(rows[k]*markRow) + 8
		if mx+2+textWidth(m.Label, 9) > b.x+b.w-4 {
			r.text(mx-2, ly, 9, markColor, "end", "", m.Label) // to the left near the right edge
		} else {
			r.text(mx+2, ly, 9, markColor, "start", "", m.Label)
		}
	}
	for _, it := range legend {
		if it.color != "" {
			r.printf(`<rect x="%s" y="%s" width="12" height="3" fill="%s"/>`+"\n", f1(it.x), f1(it.y-4), it.color)
			r.text(it.x+16, it.y, 11, textColor, "start", "", it.name)
		} else {
			r.text(it.x, it.y, 11, dimText, "start", "", it.name)
		}
	}
}

// timeX maps a time to a horizontal pixel from left to right.
func (r *renderer) timeX(left, right float64) func(time.Time) float64 {
	span := float64(r.end.Sub(r.start))
	return func(t time.Time) float64 { return left + float64(t.Sub(r.start))/span*(right-left) }
}

// line draws the points as polylines, a new one after each gap: a sample
// that is missing (further from the last than one and a half steps) or
// that is not a number. A lone sample between gaps is a dot.
func (r *renderer) line(points []Point, stroke string, x func(time.Time) float64, y func(float64) float64) {
	step := r.data.Step
	if step <= 0 {
		step = smallestInterval(points)
	}
	var seg []string
	var last time.Time
	flush := func() {
		switch len(seg) {
		case 0:
		case 1:
			xy := strings.Split(seg[0], ",")
			r.printf(`<circle cx="%s" cy="%s" r="1.5" fill="%s" stroke="none"/>`+"\n", xy[0], xy[1], stroke)
		default:
			r.printf(`<polyline stroke="%s" points="%s"/>`+"\n", stroke, strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for _, p := range points {
		if !finite(p.V) {
			flush()
			continue
		}
		if len(seg) > 0 && step > 0 && p.T.Sub(last) > step+step/2 {
			flush()
		}
		seg = append(seg, f1(x(p.T))+","+f1(y(p.V)))
		last = p.T
	}
	flush()
}

// smallestInterval is the least time between two samples, 0 with fewer
// than two.
func smallestInterval(points []Point) time.Duration {
	var d time.Duration
	for k := 1; k < len(points); k++ {
		if iv := points[k].T.Sub(points[k-1].T); iv > 0 && (d == 0 || iv < d) {
			d = iv
		}
	}
	return d
}

// valueRange is the least and the greatest finite value; ok is false when
// there is none.
func valueRange(series []Series) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.Points {
			if finite(p.V) {
				lo, hi = min(lo, p.V), max(hi, p.V)
			}
		}
	}
	if lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// placeLabels puts each mark's label on the first of at most maxRows lines
// where it does not run into the label before it, or on the line that
// frees up first. It returns each label's line and how many lines it used.
func placeLabels(marks []Mark, x func(time.Time) float64, maxRows int) ([]int, int) {
	maxRows = max(maxRows, 1)
	rows := make([]int, len(marks))
	var ends []float64
	for k, m := range marks {
		mx := x(m.T)
		row := -1
		for j, e := range ends {
			if e < mx {
				row = j
				break
			}
		}
		if row < 0 && len(ends) < maxRows {
			row = len(ends)
			ends = append(ends, 0)
		}
		if row < 0 {
			row = 0
			for j, e := range ends {
				if e < ends[row] {
					row = j
				}
			}
		}
		rows[k] = row
		ends[row] = mx + 2 + textWidth(m.Label, 9) + 4
	}
	return rows, len(ends)
}

// legendItem is one entry of a legend: a colour and a name, or, without a
// colour, how many more series there are than fit.
type legendItem struct {
	x, y        float64
	color, name string
}

// layoutLegend puts a panel's series names in lines at its bottom, in at
// most a quarter of its height; the series that do not fit are counted in
// a last "+N more". It returns the entries and their height.
func layoutLegend(series []Series, b box) ([]legendItem, float64) {
	if len(series) == 0 {
		return nil, 0
	}
	avail := b.w - 16
	maxRows := max(1, int(b.h/4/legendRow))
	var items []legendItem
	row, x := 0, 0.0
	for j, s := range series {
		name := fit(s.Name, avail-20, 11)
		w := 16 + textWidth(name, 11) + 14
		if x > 0 && x+w > avail {
			row, x = row+1, 0
		}
		if row == maxRows {
			break
		}
		items = append(items, legendItem{x: x, y: float64(row), color: palette[j%len(palette)], name: name})
		x += w
	}
	if len(items) < len(series) {
		row-- // the loop stopped on the line after the last
		more := func() string { return "+" + strconv.Itoa(len(series)-len(items)) + " more" }
		end := func() float64 { // where the last line's entries end
			if len(items) == 0 || items[len(items)-1].y != float64(row) {
				return 0
			}
			last := items[len(items)-1]
			return last.x + 16 + textWidth(last.name, 11) + 14
		}
		for len(items) > 0 && end()+textWidth(more(), 11) > avail {
			items = items[:len(items)-1]
		}
		items = append(items, legendItem{x: end(), y: float64(row), name: more()})
	}
	height := float64(row+1)*legendRow + 4
	for k := range items {
		items[k].x += b.x + 8
		items[k].y = b.y + b.h - height + items[k].y*legendRow + 11
	}
	return items, height
}
