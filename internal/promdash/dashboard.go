package promdash

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Columns is the width of Grafana's grid: a panel's gridPos x and w count
// columns of the dashboard's width divided by 24.
const Columns = 24

// Dashboard is the part of a Grafana dashboard that Render draws.
type Dashboard struct {
	Title  string
	Panels []Panel
}

// Panel is one timeseries or stat panel.
type Panel struct {
	Title string
	// Type is "timeseries" or "stat" (Load reads Grafana's older "graph"
	// and "singlestat" as these).
	Type string
	Grid Grid
	// Unit is Grafana's unit id (fieldConfig.defaults.unit): "short",
	// "s", "bytes", "percentunit", "mps" and the other rates, or "" for a
	// plain number.
	Unit    string
	Targets []Target
	// Thresholds are the panel's absolute thresholds in ascending order;
	// the first, the base colour, has Value -Inf. A stat panel colours its
	// value with them.
	Thresholds []Threshold
	// ThresholdLines is set when a timeseries panel draws its thresholds
	// (fieldConfig.defaults.custom.thresholdsStyle is not "off").
	ThresholdLines bool
}

// Grid is a panel's gridPos: columns from the left and rows from the top
// (a row is about 30 pixels), width and height in the same units.
type Grid struct {
	X, Y, W, H int
}

// Target is one query of a panel.
type Target struct {
	Expr string
	// Legend is Grafana's legendFormat: {{label}} stands for the series'
	// value of label. Empty or "__auto", the series is named by its
	// labels.
	Legend string
}

// Threshold is one step of a panel's thresholds: from Value up, Color.
type Threshold struct {
	Value float64
	Color string
}

// The JSON of a dashboard, as much of it as Load reads.
type jsonDashboard struct {
	Title  string      `json:"title"`
	Panels []jsonPanel `json:"panels"`
	// Grafana's HTTP API wraps the dashboard: {"dashboard": {...}}.
	Dashboard *jsonDashboard `json:"dashboard"`
}

type jsonPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
			Custom struct {
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Hide         bool   `json:"hide"`
	} `json:"targets"`
	Panels []jsonPanel `json:"panels"`
}

// Load reads a dashboard exported from Grafana (or the same wrapped in
// {"dashboard": ...}). A row's panels are read in its place and the row
// itself dropped; hidden queries are left out. It fails on a panel it
// cannot draw: another type than timeseries or stat, or a gridPos outside
// the grid or without area.
func Load(r io.Reader) (*Dashboard, error) {
	var jd jsonDashboard
	dec := json.NewDecoder(r)
	if err := dec.Decode(&jd); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	if jd.Dashboard != nil && jd.Panels == nil {
		jd = *jd.Dashboard
	}
	if len(jd.Panels) == 0 {
		return nil, errors.New("dashboard has no panels")
	}
	d := &Dashboard{Title: jd.Title}
	var load func(jps []jsonPanel) error
	load = func(jps []jsonPanel) error {
		for _, jp := range jps {
			if jp.Type == "row" {
				if err := load(jp.Panels); err != nil {
					return err
				}
				continue
			}
			p, err := panel(jp)
			if err != nil {
				return fmt.Errorf("panel %d %q: %w", len(d.Panels)+1, jp.Title, err)
			}
			d.Panels = append(d.Panels, p)
		}
		return nil
	}
	if err := load(jd.Panels); err != nil {
		return nil, err
	}
	return d, nil
}

func panel(jp jsonPanel) (Panel, error) {
	p := Panel{Title: jp.Title, Unit: jp.FieldConfig.Defaults.Unit}
	switch jp.Type {
	case "timeseries", "graph":
		p.Type = "timeseries"
	case "stat", "singlestat":
		p.Type = "stat"
	default:
		return p, fmt.Errorf("type %q is not drawn (timeseries, stat)", jp.Type)
	}
	if jp.GridPos == nil {
		return p, errors.New("no gridPos")
	}
	p.Grid = Grid{X: jp.GridPos.X, Y: jp.GridPos.Y, W: jp.GridPos.W, H: jp.GridPos.H}
	if err := p.Grid.check(); err != nil {
		return p, err
	}
	for _, t := range jp.Targets {
		if !t.Hide {
			p.Targets = append(p.Targets, Target{Expr: t.Expr, Legend: t.LegendFormat})
		}
	}
	th := jp.FieldConfig.Defaults.Thresholds
	if th.Mode == "" || th.Mode == "absolute" {
		for _, s := range th.Steps {
			v := math.Inf(-1)
			if s.Value != nil {
				v = *s.Value
			}
			p.Thresholds = append(p.Thresholds, Threshold{Value: v, Color: s.Color})
		}
	}
	mode := jp.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode
	p.ThresholdLines = p.Type == "timeseries" && mode != "" && mode != "off"
	return p, nil
}

func (g Grid) check() error {
	if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > Columns {
		return fmt.Errorf("gridPos x %d y %d w %d h %d is not inside the grid's %d columns", g.X, g.Y, g.W, g.H, Columns)
	}
	return nil
}

func (g Grid) overlaps(o Grid) bool {
	return g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H
}

// Check reports, all at once, what is wrong with the dashboard beyond what
// Render needs: a panel without a title, without a query or with an empty
// one, a query whose brackets or quotes do not close (see Metrics), a
// panel outside the grid, two panels on the same cells.
func (d *Dashboard) Check() error {
	var errs []error
	for i, p := range d.Panels {
		name := fmt.Sprintf("panel %d %q", i+1, p.Title)
		if strings.TrimSpace(p.Title) == "" {
			errs = append(errs, fmt.Errorf("%s: no title", name))
		}
		if err := p.Grid.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: no query", name))
		}
		for _, t := range p.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				errs = append(errs, fmt.Errorf("%s: empty query", name))
				continue
			}
			if _, err := Metrics(t.Expr); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		for j, o := range d.Panels[:i] {
			if p.Grid.overlaps(o.Grid) {
				errs = append(errs, fmt.Errorf("%s overlaps panel %d %q", name, j+1, o.Title))
			}
		}
	}
	return errors.Join(errs...)
}
