package promdash

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{"mxq_queue_depth", []string{"mxq_queue_depth"}},
		{`sum by (instance) (rate(mxd_transactions_total{code="250"}[1m]))`, []string{"mxd_transactions_total"}},
		{`count by (alertname) (ALERTS{alertstate="firing"})`, []string{"ALERTS"}},
		{`sum(rate(x[5m])) by (job) / sum without (instance, le) (y)`, []string{"x", "y"}},
		{"(mxq_host_up == 0 or mxq_host_heartbeat_age_seconds > 30)\n  unless on(host) mxq_host_draining == 1",
			[]string{"mxq_host_draining", "mxq_host_heartbeat_age_seconds", "mxq_host_up"}},
		{"a * on (host) group_left (role) b", []string{"a", "b"}},
		{"a * on (host) group_left b", []string{"a", "b"}},
		{"a AND b Unless c", []string{"a", "b", "c"}},
		{"histogram_quantile(0.99, sum by (le) (rate(listd_delivery_latency_seconds_bucket[5m])))", []string{"listd_delivery_latency_seconds_bucket"}},
		{"rate(a[5m] offset 1h) > bool 1e3", []string{"a"}},
		{"max_over_time(a[10m:1m]) > Inf", []string{"a"}},
		{`a{path="}{)(", name='x\'y', r=~` + "`a\"b`" + `} # a comment (not closed`, []string{"a"}},
		{"topk(3, a) + vector(1) + job:requests:rate5m", []string{"a", "job:requests:rate5m"}},
		{"vector(1)", []string{}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Metrics(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Metrics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetricsErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"sum(rate(a[1m])", `'(' opened at offset 3 is not closed`},
		{`a{code="250"`, `'{' opened at offset 1 is not closed`},
		{"a)", `')' at offset 1 closes nothing`},
		{"rate(a[1m)]", `')' at offset 9 closes '[' opened at offset 6`},
		{`a{code="250}`, "the string at offset 7 does not end"},
		{`a{code="25\"0}`, "the string at offset 7 does not end"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Metrics(tc.expr)
			if err == nil {
				t.Fatalf("Metrics = %q, no error", got)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), strconv.Quote(tc.expr)) {
				t.Errorf("error %q, want it to name the query and say %q", err, tc.want)
			}
		})
	}
}
