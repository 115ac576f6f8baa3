package promdash

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       *Dashboard
	}{{
		name: "panels of any type, hidden queries left out",
		json: `{"title": "q", "panels": [
			{"type": "timeseries", "title": "depth", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
			 "targets": [{"refId": "A", "expr": "mxq_queue_depth", "legendFormat": "depth"},
			             {"refId": "B", "expr": "hidden", "hide": true},
			             {"refId": "C", "expr": "mxq_queue_pending"}]},
			{"type": "text", "title": "read me"},
			{"type": "stat", "title": "dead", "targets": [{"expr": "mxq_queue_dead"}]}]}`,
		want: &Dashboard{Title: "q", Panels: []Panel{
			{Title: "depth", Queries: []string{"mxq_queue_depth", "mxq_queue_pending"}},
			{Title: "read me"},
			{Title: "dead", Queries: []string{"mxq_queue_dead"}},
		}},
	}, {
		name: "wrapped as Grafana's API serves it, open and collapsed rows",
		json: `{"dashboard": {"title": "q", "panels": [
			{"type": "row", "title": "open row", "panels": []},
			{"type": "timeseries", "title": "a", "targets": [{"expr": "a"}]},
			{"type": "row", "title": "collapsed", "collapsed": true,
			 "panels": [{"type": "stat", "title": "b", "targets": [{"expr": "b"}]}]}]}}`,
		want: &Dashboard{Title: "q", Panels: []Panel{
			{Title: "a", Queries: []string{"a"}},
			{Title: "b", Queries: []string{"b"}},
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
	for _, tc := range []struct {
		name, json string
		want       string // in the error
	}{
		{"not JSON", `{"panels": [`, "dashboard JSON"},
		{"no panels", `{"title": "empty"}`, "no panels"},
		{"a query that is not a string", `{"panels": [{"title": "a", "targets": [{"expr": 1}]}]}`, "dashboard JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(strings.NewReader(tc.json))
			if err == nil {
				t.Fatalf("Load succeeded: %+v", d)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
