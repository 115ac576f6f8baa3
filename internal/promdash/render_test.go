package promdash

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// drawing is what a rendered SVG holds, read back with an XML decoder.
type drawing struct {
	// By panel number (the id panel-N of its group): its texts, its
	// polylines' stroke colours and its dots.
	texts     map[int][]string
	polylines map[int][]string
	dots      map[int]int
	allTexts  []string
}

// parse reads the whole document as XML, failing the test where it is not.
func parse(t *testing.T, svg []byte) drawing {
	t.Helper()
	dr := drawing{texts: map[int][]string{}, polylines: map[int][]string{}, dots: map[int]int{}}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	panel, inText := 0, false
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch tok.Name.Local {
			case "g":
				if id, ok := attr["id"]; ok {
					fmt.Sscanf(id, "panel-%d", &panel)
				}
			case "polyline":
				dr.polylines[panel] = append(dr.polylines[panel], attr["stroke"])
			case "circle":
				dr.dots[panel]++
			case "text":
				inText = true
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				dr.texts[panel] = append(dr.texts[panel], string(tok))
				dr.allTexts = append(dr.allTexts, string(tok))
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return dr
}

func render(t *testing.T, d *Dashboard, data *Data, opt Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, d, data, opt); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// steady returns points every step from t0 on, n of them, valued by f.
func steady(n int, step time.Duration, f func(k int) float64) []Point {
	ps := make([]Point, n)
	for k := range ps {
		ps[k] = Point{t0.Add(time.Duration(k) * step), f(k)}
	}
	return ps
}

func TestRender(t *testing.T) {
	step := 15 * time.Second
	d := &Dashboard{Title: "mail queue", Panels: []Panel{
		{Title: "Queue depth & pending", Type: "timeseries", Grid: Grid{0, 0, 12, 8}, Unit: "short"},
		{Title: "Dead letters", Type: "stat", Grid: Grid{12, 0, 4, 8}, Unit: "short",
			Thresholds: []Threshold{{math.Inf(-1), "green"}, {1, "orange"}}},
		{Title: "Redis memory", Type: "timeseries", Grid: Grid{16, 0, 8, 8}, Unit: "bytes"},
		{Title: "Firing alerts", Type: "timeseries", Grid: Grid{0, 8, 24, 6}},
		{Title: "Consumers", Type: "stat", Grid: Grid{0, 14, 6, 4}},
	}}
	// Depth has no samples for a minute after its 10th; pending has a
	// sample that is not a number in the middle; memory is whole.
	var depth []Point
	for _, p := range steady(40, step, func(k int) float64 { return float64(100 * k) }) {
		if k := int(p.T.Sub(t0) / step); k < 10 || k >= 14 {
			depth = append(depth, p)
		}
	}
	pending := steady(40, step, func(k int) float64 {
		if k == 20 {
			return math.NaN()
		}
		return float64(k)
	})
	data := &Data{Start: t0, End: t0.Add(10 * time.Minute), Step: step, Panels: [][]Series{
		{{Name: "depth", Points: depth}, {Name: "pending", Points: pending}},
		{{Name: "dead", Points: steady(40, step, func(k int) float64 { return float64(k / 10) })}},
		{{Name: "used", Points: steady(40, step, func(k int) float64 { return float64(k * 10 << 20) })}},
		nil,
		{{Name: "consumers alive", Points: []Point{{t0, math.NaN()}}}},
	}}
	marks := []Mark{{t0.Add(2 * time.Minute), "drain mx1"}, {t0.Add(2*time.Minute + 10*time.Second), "kill -9 listd"}, {t0.Add(time.Hour), "after the end"}}
	svg := render(t, d, data, Options{Title: "a run <of the test network>", Marks: marks})
	dr := parse(t, svg)

	for i, p := range d.Panels {
		if !slices.Contains(dr.texts[i+1], p.Title) {
			t.Errorf("panel %d: texts %q, no title %q", i+1, dr.texts[i+1], p.Title)
		}
	}
	if !slices.Contains(dr.allTexts, "a run <of the test network>") {
		t.Errorf("no title in %q", dr.allTexts)
	}
	// One line per series, and one more for each gap.
	for panel, want := range map[int]int{1: 4, 2: 0, 3: 1, 4: 0, 5: 0} {
		if got := len(dr.polylines[panel]); got != want {
			t.Errorf("panel %d: %d polylines, want %d", panel, got, want)
		}
	}
	if got := dr.polylines[1]; got[0] != got[1] || got[2] != got[3] || got[0] == got[2] {
		t.Errorf("panel 1: polyline colours %q, want each series' pieces in its own colour", got)
	}
	for _, panel := range []int{4, 5} {
		if !slices.Contains(dr.texts[panel], "no data") {
			t.Errorf("panel %d: texts %q, no \"no data\"", panel, dr.texts[panel])
		}
	}
	if !slices.Contains(dr.texts[2], "3") || !slices.Contains(dr.texts[2], "dead") {
		t.Errorf("stat panel: texts %q, want its last value 3 and its name", dr.texts[2])
	}
	for _, panel := range []int{1, 3, 4} {
		if !slices.Contains(dr.texts[panel], "drain mx1") || !slices.Contains(dr.texts[panel], "kill -9 listd") || slices.Contains(dr.texts[panel], "after the end") {
			t.Errorf("panel %d: texts %q, want the two marks inside the time range", panel, dr.texts[panel])
		}
	}
	for _, want := range []string{"12:02:00", "12:04:00", "0", "2k", "300 MiB"} {
		if !slices.Contains(dr.allTexts, want) {
			t.Errorf("no axis label %q in %q", want, dr.allTexts)
		}
	}

	if again := render(t, d, data, Options{Title: "a run <of the test network>", Marks: marks}); !bytes.Equal(svg, again) {
		t.Error("the same input rendered twice differs")
	}
}

// A lone sample between gaps is a dot: a polyline needs two points.
func TestRenderLoneSample(t *testing.T) {
	d := &Dashboard{Panels: []Panel{{Title: "p", Type: "timeseries", Grid: Grid{0, 0, 24, 8}}}}
	pts := []Point{{t0, 1}, {t0.Add(time.Minute), 2}, {t0.Add(2 * time.Minute), 3}, {t0.Add(3 * time.Minute), 4}}
	data := &Data{Step: 30 * time.Second, Panels: [][]Series{{{Name: "s", Points: pts}}}}
	dr := parse(t, render(t, d, data, Options{}))
	if len(dr.polylines[1]) != 0 || dr.dots[1] != 4 {
		t.Errorf("samples 2 steps apart: %d polylines and %d dots, want 0 and 4", len(dr.polylines[1]), dr.dots[1])
	}
	// Without a step, the samples' own interval is the step.
	data.Step = 0
	dr = parse(t, render(t, d, data, Options{}))
	if len(dr.polylines[1]) != 1 || dr.dots[1] != 0 {
		t.Errorf("without a step: %d polylines and %d dots, want 1 and 0", len(dr.polylines[1]), dr.dots[1])
	}
}

func TestRenderMismatch(t *testing.T) {
	d := &Dashboard{Panels: []Panel{{Title: "p", Type: "timeseries", Grid: Grid{0, 0, 24, 8}}}}
	if err := Render(io.Discard, d, &Data{}, Options{}); err == nil {
		t.Error("Render of data for 0 panels on a dashboard of 1: no error")
	}
}

// The example dashboard drawn from made-up data, compared with
// testdata/example.svg (go test -update rewrites it): a change to the
// drawing shows in review as a change of that picture.
func TestRenderExample(t *testing.T) {
	d := loadExample(t)
	step := 10 * time.Second
	data := &Data{Start: t0, End: t0.Add(15 * time.Minute), Step: step, Panels: make([][]Series, len(d.Panels))}
	for i, p := range d.Panels {
		for j, tg := range p.Targets {
			for h := range 2 {
				name := tg.Legend
				if name == "" || strings.Contains(name, "{{") {
					name = strings.NewReplacer("{{host}}", "mx"+fmt.Sprint(h+1), "{{instance}}", fmt.Sprintf("mx%d:9441", h+1),
						"{{code}}", fmt.Sprint(451+h), "{{cause}}", []string{"timeout", "noreplicas"}[h],
						"{{replica}}", fmt.Sprintf("10.0.0.%d:6379", h+2), "{{alertname}}", []string{"MxqHostHeartbeatStale", "MxqOldestMessage"}[h]).Replace(name)
				} else if h > 0 {
					break
				}
				scale := math.Pow(10, float64((i+j)%4)) * (1 + float64(h))
				if p.Unit == "bytes" {
					scale *= 1 << 24
				}
				pts := steady(91, step, func(k int) float64 {
					return scale * (1.2 + math.Sin(float64(k+7*i+3*j)/9))
				})
				if (i+j+h)%3 == 0 {
					pts = append(pts[:40:40], pts[46:]...) // a gap
				}
				data.Panels[i] = append(data.Panels[i], Series{Name: name, Points: pts})
			}
		}
	}
	marks := []Mark{{t0.Add(4 * time.Minute), "drain mx1"}, {t0.Add(9 * time.Minute), "kill -9 listd"}, {t0.Add(9*time.Minute + 20*time.Second), "listd back"}}
	svg := render(t, d, data, Options{Marks: marks})
	parse(t, svg)
	golden := filepath.Join("testdata", "example.svg")
	if *update {
		if err := os.WriteFile(golden, svg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(want, svg) {
		t.Errorf("the picture differs from %s; look at it after go test -update", golden)
	}
}
