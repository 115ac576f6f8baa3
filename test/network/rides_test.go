package network

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Rides are what mxd and listd count of the queue's outages: how close a
// phase came to a deferral or a duplicate without one showing.
type Rides struct {
	// Waits are mxd's queue operations that found the queue unavailable
	// and waited (ride_through); GaveUp those answered 4xx after all.
	Waits, GaveUp float64
	// Redelivered are messages that came back to listd after their
	// acknowledgement was lost, and that it acknowledged again instead
	// of delivering (queue.Delivery.AckedBefore); UnconfirmedAcks are
	// acknowledgements no replica confirmed in time; TakenBack are
	// entries listd read again from its own pending list after a
	// failure.
	Redelivered, UnconfirmedAcks, TakenBack float64
}

// rides reads the counters now, summed over the mxd hosts.
func (w *world) rides() Rides {
	var r Rides
	for _, m := range w.mxd {
		text := metricsText(m.Metrics)
		for _, op := range []string{"enqueue", "spool", "registry"} {
			r.Waits += metric(text, `mxd_queue_waits_total{op="`+op+`"}`)
			r.GaveUp += metric(text, `mxd_queue_ride_through_seconds_count{op="`+op+`",outcome="gave_up"}`)
		}
	}
	text := metricsText(w.lists.IP + ":9126")
	r.Redelivered = metric(text, "listd_redeliveries_total")
	r.UnconfirmedAcks = metric(text, `listd_unconfirmed_total{write="ack"}`)
	r.TakenBack = metric(text, "listd_taken_back_total")
	return r
}

// since is what r counted after before. A restart sets a process's
// counters back to 0: what it counted before is lost, not negative.
func (r Rides) since(before Rides) Rides {
	d := func(a, b float64) float64 { return max(a-b, 0) }
	return Rides{Waits: d(r.Waits, before.Waits), GaveUp: d(r.GaveUp, before.GaveUp),
		Redelivered: d(r.Redelivered, before.Redelivered), UnconfirmedAcks: d(r.UnconfirmedAcks, before.UnconfirmedAcks),
		TakenBack: d(r.TakenBack, before.TakenBack)}
}

// RideLog keeps the counters at the start of each phase.
type RideLog struct {
	phases []string
	at     []Rides
}

// Mark notes the counters at the start of phase ("" for the end).
func (l *RideLog) Mark(phase string, r Rides) {
	l.phases = append(l.phases, phase)
	l.at = append(l.at, r)
}

// Print writes, per phase, what the counters counted during it.
func (l *RideLog) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "riding through the queue\tmxd waits\tgave up (4xx)\tlistd redelivered\tunconfirmed acks\ttaken back\t")
	for i := 0; i+1 < len(l.at); i++ {
		r := l.at[i+1].since(l.at[i])
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", l.phases[i], r.Waits, r.GaveUp, r.Redelivered, r.UnconfirmedAcks, r.TakenBack)
	}
	tw.Flush()
}

// In is what the counters counted during phase.
func (l *RideLog) In(phase string) Rides {
	for i := 0; i+1 < len(l.at); i++ {
		if l.phases[i] == phase {
			return l.at[i+1].since(l.at[i])
		}
	}
	return Rides{}
}
