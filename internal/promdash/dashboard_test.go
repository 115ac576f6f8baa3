package promdash

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const example = "../../docs/examples/dashboard.json"

func loadExample(t *testing.T) *Dashboard {
	t.Helper()
	f, err := os.Open(example)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Load(f)
	if err != nil {
		t.Fatalf("Load(%s): %v", example, err)
	}
	return d
}

// The example dashboard is well formed, its panels are in the file in
// the order Grafana shows them, and it reads only the metrics of mxd
// (mxd_), listd (listd_), mxq exporter (mxq_) and Prometheus's ALERTS.
// test/dashboard_test.go checks each name against the code.
func TestExampleDashboard(t *testing.T) {
	d := loadExample(t)
	if len(d.Panels) < 10 {
		t.Fatalf("%d panels, want the ten or so of docs/operations.md", len(d.Panels))
	}
	if err := d.Check(); err != nil {
		t.Error(err)
	}
	// Check covers titles, queries that parse, the grid and overlaps.
	for i, p := range d.Panels {
		if i > 0 {
			prev := d.Panels[i-1].Grid
			if p.Grid.Y < prev.Y || p.Grid.Y == prev.Y && p.Grid.X < prev.X {
				t.Errorf("panel %q (%+v) comes after %q (%+v) in the file but before it on the screen", p.Title, p.Grid, d.Panels[i-1].Title, prev)
			}
		}
		for _, tg := range p.Targets {
			names, _ := Metrics(tg.Expr)
			if tg.Expr == "" || len(names) == 0 {
				t.Errorf("panel %q: query %q reads no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !strings.HasPrefix(n, "mxd_") && !strings.HasPrefix(n, "listd_") && !strings.HasPrefix(n, "mxq_") && n != "ALERTS" {
					t.Errorf("panel %q: query %q reads %s, not a metric of mxd, listd or mxq exporter", p.Title, tg.Expr, n)
				}
			}
		}
	}
}

func TestLoad(t *testing.T) {
	inf := math.Inf(-1)
	for _, tc := range []struct {
		name, json string
		want       *Dashboard
	}{{
		name: "timeseries and stat",
		json: `{"title": "q", "panels": [
			{"type": "timeseries", "title": "depth", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
			 "fieldConfig": {"defaults": {"unit": "short", "custom": {"thresholdsStyle": {"mode": "line"}},
			   "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 900}]}}},
			 "targets": [{"refId": "A", "expr": "mxq_queue_depth", "legendFormat": "depth"},
			             {"refId": "B", "expr": "hidden", "hide": true}]},
			{"type": "stat", "title": "dead", "gridPos": {"x": 12, "y": 0, "w": 4, "h": 8},
			 "targets": [{"expr": "mxq_queue_dead"}]}]}`,
		want: &Dashboard{Title: "q", Panels: []Panel{
			{Title: "depth", Type: "timeseries", Grid: Grid{0, 0, 12, 8}, Unit: "short",
				Targets:    []Target{{Expr: "mxq_queue_depth", Legend: "depth"}},
				Thresholds: []Threshold{{inf, "green"}, {900, "red"}}, ThresholdLines: true},
			{Title: "dead", Type: "stat", Grid: Grid{12, 0, 4, 8}, Targets: []Target{{Expr: "mxq_queue_dead"}}},
		}},
	}, {
		name: "wrapped as Grafana's API serves it, rows, old panel types",
		json: `{"dashboard": {"title": "q", "panels": [
			{"type": "row", "title": "open row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": []},
			{"type": "graph", "title": "a", "gridPos": {"x": 0, "y": 1, "w": 24, "h": 8}, "targets": [{"expr": "a"}]},
			{"type": "row", "title": "collapsed", "collapsed": true, "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1},
			 "panels": [{"type": "singlestat", "title": "b", "gridPos": {"x": 0, "y": 10, "w": 6, "h": 4}, "targets": [{"expr": "b"}]}]}]}}`,
		want: &Dashboard{Title: "q", Panels: []Panel{
			{Title: "a", Type: "timeseries", Grid: Grid{0, 1, 24, 8}, Targets: []Target{{Expr: "a"}}},
			{Title: "b", Type: "stat", Grid: Grid{0, 10, 6, 4}, Targets: []Target{{Expr: "b"}}},
		}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(strings.NewReader(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	panel := func(typ, grid string) string {
		return `{"panels": [{"type": "timeseries", "title": "first", "gridPos": {"x": 0, "y": 0, "w": 6, "h": 4}},
			{"type": "` + typ + `", "title": "second", ` + grid + `"targets": [{"expr": "x"}]}]}`
	}
	for _, tc := range []struct {
		name, json string
		want       []string // in the error
	}{
		{"not JSON", `{"panels": [`, []string{"dashboard JSON"}},
		{"no panels", `{"title": "empty"}`, []string{"no panels"}},
		{"a text panel", panel("text", `"gridPos": {"x": 6, "y": 0, "w": 6, "h": 4}, `), []string{`panel 2 "second"`, `type "text"`}},
		{"no gridPos", panel("stat", ""), []string{`panel 2 "second"`, "no gridPos"}},
		{"past the 24th column", panel("stat", `"gridPos": {"x": 20, "y": 0, "w": 6, "h": 4}, `), []string{`panel 2 "second"`, "x 20", "w 6", "24 columns"}},
		{"no width", panel("stat", `"gridPos": {"x": 6, "y": 0, "w": 0, "h": 4}, `), []string{`panel 2 "second"`, "w 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(strings.NewReader(tc.json))
			if err == nil {
				t.Fatalf("Load succeeded: %+v", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := func() *Dashboard {
		return &Dashboard{Panels: []Panel{
			{Title: "depth", Type: "timeseries", Grid: Grid{0, 0, 12, 8}, Targets: []Target{{Expr: "mxq_queue_depth"}}},
			{Title: "rate", Type: "timeseries", Grid: Grid{12, 0, 12, 8}, Targets: []Target{{Expr: `sum by (code) (rate(mxd_transactions_total{code!="250"}[1m]))`}}},
		}}
	}
	if err := good().Check(); err != nil {
		t.Fatalf("a good dashboard: %v", err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(d *Dashboard)
		want  []string
	}{
		{"no title", func(d *Dashboard) { d.Panels[1].Title = " " }, []string{"panel 2", "no title"}},
		{"no query", func(d *Dashboard) { d.Panels[1].Targets = nil }, []string{`panel 2 "rate"`, "no query"}},
		{"empty query", func(d *Dashboard) { d.Panels[0].Targets[0].Expr = "" }, []string{`panel 1 "depth"`, "empty query"}},
		{"parenthesis left open", func(d *Dashboard) { d.Panels[1].Targets[0].Expr = "sum(rate(mxd_transactions_total[1m])" },
			[]string{`panel 2 "rate"`, `'(' opened at offset 3 is not closed`}},
		{"brace closed by a parenthesis", func(d *Dashboard) { d.Panels[1].Targets[0].Expr = `rate(x{code="250")[1m]` },
			[]string{`panel 2 "rate"`, `')' at offset 17 closes '{'`}},
		{"overlap", func(d *Dashboard) { d.Panels[1].Grid.X = 6 }, []string{`panel 2 "rate" overlaps panel 1 "depth"`}},
		{"outside", func(d *Dashboard) { d.Panels[1].Grid.W = 13 }, []string{`panel 2 "rate"`, "24 columns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			tc.spoil(d)
			err := d.Check()
			if err == nil {
				t.Fatal("Check found nothing")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
