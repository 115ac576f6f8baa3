package promdash

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options are what Render draws besides the dashboard and its data.
type Options struct {
	// Title heads the picture; the dashboard's title when empty.
	Title string
	// Marks are moments drawn on every timeseries panel.
	Marks []Mark
	// Location is the time zone times are shown in; UTC when nil.
	Location *time.Location
}

// Mark is a moment drawn as a dashed vertical line with a short label
// across every timeseries panel: a phase of a run ("drain mx1", "kill -9
// listd").
type Mark struct {
	T     time.Time
	Label string
}

// Grafana's geometry: a column is a 24th of the width, a row 30 pixels,
// and panels are 8 pixels apart.
const (
	colWidth   = 60
	rowHeight  = 30
	gap        = 8
	headHeight = 56
)

// Grafana's dark theme.
const (
	background = "#111217"
	panelFill  = "#181b1f"
	border     = "#2c3235"
	gridLine   = "#24292e"
	textColor  = "#ccccdc"
	dimText    = "#8e8e8e"
	markColor  = "#b0b0c0"
)

// palette is Grafana's classic palette: a panel's series take its colours
// in order.
var palette = []string{"#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
	"#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"}

// namedColors are Grafana's colour names as thresholds use them.
var namedColors = map[string]string{"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A",
	"blue": "#5794F2", "purple": "#B877D9", "text": textColor, "transparent": "none"}

// Render writes a picture of the dashboard with data, which Fetch read for
// it, as one SVG document: every panel on Grafana's grid, a timeseries
// panel as a line per series with axes and a legend, a stat panel as the
// last value of each series.
func Render(w io.Writer, d *Dashboard, data *Data, opt Options) error {
	if len(data.Panels) != len(d.Panels) {
		return fmt.Errorf("data for %d panels, the dashboard has %d", len(data.Panels), len(d.Panels))
	}
	r := &renderer{out: bufio.NewWriter(w), data: data, opt: opt, loc: cmp.Or(opt.Location, time.UTC)}
	r.start, r.end = timeRange(data)
	title := cmp.Or(opt.Title, d.Title)
	rows := 0
	for _, p := range d.Panels {
		rows = max(rows, p.Grid.Y+p.Grid.H)
	}
	width := gap + Columns*colWidth
	height := headHeight + rows*(rowHeight+gap)
	r.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Inter, Helvetica, Arial, sans-serif">`+"\n",
		width, height, width, height)
	r.printf(`<rect width="%d" height="%d" fill="%s"/>`+"\n", width, height, background)
	r.text(gap, 26, 18, textColor, "start", "bold", title)
	r.text(gap, 45, 12, dimText, "start", "", r.rangeText())
	for i, p := range d.Panels {
		b := box{
			x: float64(gap + p.Grid.X*colWidth),
			y: float64(headHeight + p.Grid.Y*(rowHeight+gap)),
			w: float64(p.Grid.W*colWidth - gap),
			h: float64(p.Grid.H*(rowHeight+gap) - gap),
		}
		r.printf(`<g id="panel-%d">`+"\n", i+1)
		r.printf(`<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="%s" stroke="%s"/>`+"\n",
			f1(b.x), f1(b.y), f1(b.w), f1(b.h), panelFill, border)
		r.text(b.x+8, b.y+18, 13, textColor, "start", "bold", fit(p.Title, b.w-16, 13))
		if p.Type == "stat" {
			r.stat(p, data.Panels[i], b)
		} else {
			r.timeseries(i, p, data.Panels[i], b)
		}
		r.printf("</g>\n")
	}
	r.printf("</svg>\n")
	return r.out.Flush()
}

type box struct{ x, y, w, h float64 }

type renderer struct {
	// out keeps the first write error; Flush returns it.
	out        *bufio.Writer
	data       *Data
	opt        Options
	loc        *time.Location
	start, end time.Time
}

func (r *renderer) printf(format string, args ...any) { fmt.Fprintf(r.out, format, args...) }

// text writes s escaped; anchor is start, middle or end.
func (r *renderer) text(x, y, size float64, fill, anchor, weight, s string) {
	r.printf(`<text x="%s" y="%s" font-size="%s" fill="%s"`, f1(x), f1(y), f1(size), fill)
	if anchor != "start" {
		r.printf(` text-anchor="%s"`, anchor)
	}
	if weight != "" {
		r.printf(` font-weight="%s"`, weight)
	}
	r.printf(">")
	xml.EscapeText(r.out, []byte(s))
	r.printf("</text>\n")
}

func (r *renderer) rangeText() string {
	s, e := r.start.In(r.loc), r.end.In(r.loc)
	to := e.Format("15:04:05")
	if s.YearDay() != e.YearDay() || s.Year() != e.Year() {
		to = e.Format("2006-01-02 15:04:05")
	}
	text := s.Format("2006-01-02 15:04:05") + " to " + to + " " + s.Format("MST")
	if r.data.Step > 0 {
		text += ", a sample every " + r.data.Step.String()
	}
	return text
}

// timeRange is the data's, or the span of its samples when it has none.
func timeRange(data *Data) (start, end time.Time) {
	start, end = data.Start, data.End
	if start.IsZero() || end.IsZero() {
		for _, ss := range data.Panels {
			for _, s := range ss {
				for _, p := range s.Points {
					if start.IsZero() || p.T.Before(start) {
						start = p.T
					}
					if end.IsZero() || p.T.After(end) {
						end = p.T
					}
				}
			}
		}
	}
	if !end.After(start) {
		end = start.Add(time.Minute)
	}
	return start, end
}

// stat draws the last value of each series, coloured by the thresholds.
func (r *renderer) stat(p Panel, series []Series, b box) {
	type value struct {
		name, text, color string
	}
	var vs []value
	for i, s := range series {
		for j := len(s.Points) - 1; j >= 0; j-- {
			if v := s.Points[j].V; finite(v) {
				vs = append(vs, value{s.Name, formatValue(p.Unit, v), thresholdColor(p.Thresholds, v, palette[i%len(palette)])})
				break
			}
		}
	}
	if len(vs) == 0 {
		r.text(b.x+b.w/2, b.y+b.h/2+6, 16, dimText, "middle", "", "no data")
		return
	}
	cellW := (b.w - 16) / float64(len(vs))
	top, bottom := b.y+28, b.y+b.h-8
	for i, v := range vs {
		cx := b.x + 8 + cellW*(float64(i)+0.5)
		size := min((bottom-top)*0.45, cellW/(0.6*float64(len([]rune(v.text)))), 72)
		cy := top + (bottom-top)/2 + size*0.35
		r.text(cx, cy, math.Round(size), v.color, "middle", "bold", v.text)
		if v.name != "" {
			r.text(cx, min(cy+18, bottom), 11, dimText, "middle", "", fit(v.name, cellW, 11))
		}
	}
}

// thresholdColor is the colour of the highest threshold at or below v, or
// def without thresholds.
func thresholdColor(ts []Threshold, v float64, def string) string {
	c := def
	for _, t := range ts {
		if v >= t.Value {
			c = color(t.Color)
		}
	}
	return c
}

// color turns a Grafana colour name (green, dark-red, #FF9830) into one
// an SVG reads.
func color(name string) string {
	if strings.HasPrefix(name, "#") && strings.Trim(name[1:], "0123456789abcdefABCDEF") == "" {
		return name
	}
	for _, prefix := range []string{"super-light-", "light-", "semi-dark-", "dark-"} {
		name = strings.TrimPrefix(name, prefix)
	}
	if c, ok := namedColors[name]; ok {
		return c
	}
	return textColor
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// f1 prints a coordinate to a tenth of a pixel.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// textWidth is about how wide s is at size, in a proportional font.
func textWidth(s string, size float64) float64 {
	return float64(len([]rune(s))) * size * 0.58
}

// fit shortens s with an ellipsis to about width pixels at size.
func fit(s string, width, size float64) string {
	if textWidth(s, size) <= width {
		return s
	}
	rs := []rune(s)
	n := max(int(width/(size*0.58))-1, 1)
	if n >= len(rs) {
		return s
	}
	return string(rs[:n]) + "…"
}

// sortedMarks are the marks inside the time range, in time order.
func (r *renderer) sortedMarks() []Mark {
	var ms []Mark
	for _, m := range r.opt.Marks {
		if !m.T.Before(r.start) && !m.T.After(r.end) {
			ms = append(ms, m)
		}
	}
	slices.SortStableFunc(ms, func(a, b Mark) int { return a.T.Compare(b.T) })
	return ms
}
