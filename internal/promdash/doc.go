// Package promdash reads the queries of a Grafana dashboard so that tests
// can hold them to the programs: Load reads the dashboard's JSON (its
// panels and their PromQL queries), Metrics lists the metric names a
// query reads, and Fetch runs every panel's queries against a Prometheus
// server over a time range. test/dashboard_test.go checks with them that
// docs/examples/dashboard.json reads only metrics mxd, listd and mxq
// exporter export; the test network (test/network), that every panel
// shows data after a run. Grafana draws the dashboard itself: this
// package draws nothing.
//
// Metrics is not a PromQL parser. It finds the words that stand where a
// metric name stands and catches the mistakes a hand-edited file makes (a
// bracket left open, a string not closed); whether Prometheus accepts a
// query is promtool's to say, and test/dashboard_test.go asks it.
// Prometheus's own parser (github.com/prometheus/prometheus/promql/parser)
// would add the Prometheus module and its requirements to go.mod for this
// one list of names.
//
// It uses the standard library only and imports no package of this
// module.
package promdash
