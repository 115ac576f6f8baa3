package promdash

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// prometheus answers /api/v1/query_range under prefix with canned bodies
// by query, with the status of statuses (200 when it has none), and keeps
// the queries it was asked.
type prometheus struct {
	t        *testing.T
	prefix   string
	bodies   map[string]string
	statuses map[string]int

	mu   sync.Mutex
	asks []map[string]string
}

func (p *prometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != p.prefix+"/api/v1/query_range" {
		p.t.Errorf("request for %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	ask := map[string]string{}
	for k := range q {
		ask[k] = q.Get(k)
	}
	p.mu.Lock()
	p.asks = append(p.asks, ask)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	status := p.statuses[q.Get("query")]
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write([]byte(p.bodies[q.Get("query")]))
}

func serve(t *testing.T, p *prometheus) string {
	p.t = t
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL + p.prefix + "/"
}

var (
	t0   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	unix = strconv.FormatInt(t0.Unix(), 10)
)

func TestFetch(t *testing.T) {
	d := &Dashboard{Panels: []Panel{
		{Title: "depth and hosts", Queries: []string{"mxq_queue_depth", "mxq_host_up"}},
		{Title: "replies", Queries: []string{`sum by (code) (rate(mxd_transactions_total{code!="250"}[1m]))`, "sum(mxd_queue_waiting_sessions)"}},
		{Title: "nothing yet", Queries: []string{"listd_deliveries_total"}},
	}}
	p := &prometheus{prefix: "/prometheus", bodies: map[string]string{
		"mxq_queue_depth": `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"mxq_queue_depth","job":"mxq"},"values":[[` + unix + `,"3"],[` + unix + `.5,"4"]]}]}}`,
		// Samples that are not numbers.
		"mxq_host_up": `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"mxq_host_up","host":"mx2","job":"mxq"},"values":[[` + unix + `,"1"]]},
			{"metric":{"__name__":"mxq_host_up","host":"mx1","job":"mxq"},"values":[[` + unix + `,"NaN"],[` + unix + `.015,"+Inf"]]}]}}`,
		`sum by (code) (rate(mxd_transactions_total{code!="250"}[1m]))`: `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"code":"452"},"values":[[` + unix + `,"0.25"]]},
			{"metric":{"code":"451"},"values":[[` + unix + `,"1e-3"]]}]}}`,
		"sum(mxd_queue_waiting_sessions)": `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{},"values":[[` + unix + `,"7"]]}]},"warnings":["ignored"]}`,
		"listd_deliveries_total": `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
	}}
	url := serve(t, p)
	start, end, step := t0, t0.Add(10*time.Minute), 15*time.Second
	got, err := d.Fetch(context.Background(), url, start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Series{{
		{Labels: map[string]string{"__name__": "mxq_queue_depth", "job": "mxq"},
			Points: []Point{{t0, 3}, {t0.Add(500 * time.Millisecond), 4}}},
		{Labels: map[string]string{"__name__": "mxq_host_up", "host": "mx2", "job": "mxq"},
			Points: []Point{{t0, 1}}},
		{Labels: map[string]string{"__name__": "mxq_host_up", "host": "mx1", "job": "mxq"},
			Points: []Point{{t0, math.NaN()}, {t0.Add(15 * time.Millisecond), math.Inf(1)}}},
	}, {
		{Labels: map[string]string{"code": "452"}, Points: []Point{{t0, 0.25}}},
		{Labels: map[string]string{"code": "451"}, Points: []Point{{t0, 0.001}}},
		{Labels: map[string]string{}, Points: []Point{{t0, 7}}},
	}, nil}
	if diff := cmp.Diff(want, got, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("Fetch (-want +got):\n%s", diff)
	}

	var queries []string
	for _, ask := range p.asks {
		queries = append(queries, ask["query"])
		for k, want := range map[string]float64{"start": float64(start.Unix()), "end": float64(end.Unix()), "step": 15} {
			if v, err := strconv.ParseFloat(ask[k], 64); err != nil || v != want {
				t.Errorf("query %q: %s=%q, want %v", ask["query"], k, ask[k], want)
			}
		}
		if len(ask) != 4 {
			t.Errorf("query %q: parameters %v, want query, start, end, step", ask["query"], ask)
		}
	}
	wantQueries := []string{"mxq_queue_depth", "mxq_host_up", `sum by (code) (rate(mxd_transactions_total{code!="250"}[1m]))`, "sum(mxd_queue_waiting_sessions)", "listd_deliveries_total"}
	if diff := cmp.Diff(wantQueries, queries); diff != "" {
		t.Errorf("queries asked (-want +got):\n%s", diff)
	}
}

func TestFetchErrors(t *testing.T) {
	d := &Dashboard{Panels: []Panel{
		{Title: "fine", Queries: []string{"up"}},
		{Title: "replies", Queries: []string{"rate(mxd_transactions_total[1m]"}},
	}}
	ok := `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   []string
	}{
		{"prometheus refuses the query", http.StatusBadRequest,
			`{"status":"error","errorType":"bad_data","error":"1:32: parse error: unclosed left parenthesis"}`,
			[]string{`panel "replies"`, `query "rate(mxd_transactions_total[1m]"`, "bad_data", "unclosed left parenthesis"}},
		{"not prometheus", http.StatusBadGateway, "<html>bad gateway</html>",
			[]string{`panel "replies"`, "HTTP 502"}},
		{"an instant vector", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`,
			[]string{`panel "replies"`, `result type "vector"`}},
		{"a value that is not a number", http.StatusOK,
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"lots"]]}]}}`,
			[]string{`panel "replies"`, `map[a:b]`, `"lots"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := d.Panels[1].Queries[0]
			url := serve(t, &prometheus{bodies: map[string]string{"up": ok, bad: tc.body}, statuses: map[string]int{bad: tc.status}})
			_, err := d.Fetch(context.Background(), url, t0, t0.Add(time.Minute), time.Second)
			checkError(t, err, tc.want)
		})
	}
}

func checkError(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %s", err, w)
		}
	}
}
