package promdash

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Dashboard is the part of a Grafana dashboard that holds queries.
type Dashboard struct {
	Title  string
	Panels []Panel
}

// Panel is one panel and the PromQL expressions of its queries, in the
// order of the file.
type Panel struct {
	Title   string
	Queries []string
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
	Targets []struct {
		Expr string `json:"expr"`
		Hide bool   `json:"hide"`
	} `json:"targets"`
	Panels []jsonPanel `json:"panels"`
}

// Load reads a dashboard exported from Grafana (or the same wrapped in
// {"dashboard": ...}). A row's panels are read in its place and the row
// itself dropped, whether it is open or collapsed; hidden queries are
// left out.
func Load(r io.Reader) (*Dashboard, error) {
	var jd jsonDashboard
	if err := json.NewDecoder(r).Decode(&jd); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	if jd.Dashboard != nil && jd.Panels == nil {
		jd = *jd.Dashboard
	}
	if len(jd.Panels) == 0 {
		return nil, errors.New("dashboard has no panels")
	}
	d := &Dashboard{Title: jd.Title}
	var load func(jps []jsonPanel)
	load = func(jps []jsonPanel) {
		for _, jp := range jps {
			if jp.Type == "row" {
				load(jp.Panels)
				continue
			}
			p := Panel{Title: jp.Title}
			for _, t := range jp.Targets {
				if !t.Hide {
					p.Queries = append(p.Queries, t.Expr)
				}
			}
			d.Panels = append(d.Panels, p)
		}
	}
	load(jd.Panels)
	return d, nil
}
