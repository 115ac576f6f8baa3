// Package promdash draws a picture of a Grafana dashboard from a
// Prometheus server's data, without Grafana: Load reads the dashboard's
// JSON, Fetch asks Prometheus for every panel's queries over a time range,
// and Render writes one self-contained SVG file laid out as Grafana lays
// the panels out. It is how a run of the test network shows what an
// operator would have seen (docs/operations.md, "Dashboard").
//
// It reads only what the picture needs: timeseries and stat panels (a
// row's panels too), their grid position, unit, thresholds, and each
// query's expression and legend. Template variables are not expanded and
// field overrides are ignored. The output is the same for the same input:
// series are sorted, numbers printed with fixed precision, and times shown
// in UTC unless Options.Location says otherwise.
//
// Check tells whether a dashboard is well formed beyond what drawing
// needs (titles, queries, no overlapping panels), and Metrics lists the
// metric names a query reads, so that a test can hold a dashboard to the
// metrics a program exports. Neither is a PromQL parser: they catch the
// mistakes a hand-edited file makes (a bracket left open, a misspelt
// prefix), not every expression Prometheus would refuse.
//
// It uses the standard library only and imports no package of this
// module.
package promdash
