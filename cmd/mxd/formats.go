package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/cmd/internal/buildinfo"
	"mxq/queue"
)

// printVersion is -version: the program's version and the record formats
// it reads and writes.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "mxd", buildinfo.Version())
	fmt.Fprintf(w, "record formats: reads %s; writes %s, the newest that every live consumer reads (docs/redis.md)\n",
		queue.FormatList(queue.Formats()), queue.FormatList(queue.Formats()))
}

// formatCollector exports the record format mxd writes, and how many
// records of each format it wrote.
type formatCollector struct{ q *queue.Queue }

var (
	formatDesc = prometheus.NewDesc("mxd_queue_format_written",
		"The record format mxd writes now: the newest every live consumer reads.", nil, nil)
	writtenDesc = prometheus.NewDesc("mxd_queue_records_written_total",
		"Messages queued, by the record format they were written in.", []string{"format"}, nil)
)

func (c formatCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- formatDesc
	ch <- writtenDesc
}

func (c formatCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(formatDesc, prometheus.GaugeValue, float64(c.q.WriteFormat()))
	for _, v := range queue.Formats() {
		ch <- prometheus.MustNewConstMetric(writtenDesc, prometheus.CounterValue, float64(c.q.Written(v)), strconv.Itoa(v))
	}
}
