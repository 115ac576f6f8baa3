package network

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"mxq/redisha"
)

// Outcome compares what was submitted with what was delivered.
type Outcome struct {
	Sent, Delivered, Missing, Duplicates int
	// MissingIDs and DuplicateIDs list a few, for the failure message.
	MissingIDs, DuplicateIDs []string
	// Delays per phase ("all" for every message): submission to delivery.
	Delays map[string][]time.Duration
	// DupByPhase, LostByPhase and Deferrals count duplicates, messages
	// never delivered, and the sender's status=deferred log lines, by the
	// phase of the message's submission.
	DupByPhase, LostByPhase, Deferrals map[string]int
	// Spam and SpamRefused count the spam submitted and the spam the
	// sender was refused at SMTP time with rspamd's GTUBE reply, by
	// phase and "all"; SpamDeferrals the sender's deferrals of spam.
	// BadSpam lists a few spam messages delivered or not refused so.
	Spam, SpamRefused map[string]int
	SpamDeferrals     int
	BadSpam           []string
}

// Compare matches submissions with deliveries.
func Compare(sent map[string]Sent, got map[string][]time.Time) Outcome {
	o := Outcome{Sent: len(sent), Delays: map[string][]time.Duration{},
		DupByPhase: map[string]int{}, LostByPhase: map[string]int{}, Deferrals: map[string]int{},
		Spam: map[string]int{}, SpamRefused: map[string]int{}}
	for id, s := range sent {
		copies := got[id]
		if len(copies) == 0 {
			o.Missing++
			o.LostByPhase[s.Phase]++
			if len(o.MissingIDs) < 10 {
				o.MissingIDs = append(o.MissingIDs, id)
			}
			continue
		}
		o.Delivered++
		if len(copies) > 1 {
			o.Duplicates += len(copies) - 1
			o.DupByPhase[s.Phase] += len(copies) - 1
			if len(o.DuplicateIDs) < 10 {
				o.DuplicateIDs = append(o.DuplicateIDs, id)
			}
		}
		first := slices.MinFunc(copies, func(a, b time.Time) int { return a.Compare(b) })
		d := max(first.Sub(s.At), 0)
		o.Delays["all"] = append(o.Delays["all"], d)
		o.Delays[s.Phase] = append(o.Delays[s.Phase], d)
	}
	return o
}

// CountDeferrals adds the sender's deferrals (by Message-ID, as
// Postfix.Deferrals counts them) to the phases of their messages; those
// of spam count apart.
func (o *Outcome) CountDeferrals(byID map[string]int, sent, spam map[string]Sent) {
	for id, n := range byID {
		if s, ok := sent[id]; ok {
			o.Deferrals["all"] += n
			o.Deferrals[s.Phase] += n
		} else if _, ok := spam[id]; ok {
			o.SpamDeferrals += n
		}
	}
}

// spamRefused is what the sender's Postfix logs of a message rspamd
// refused at the end of its data: mxd passes rspamd's reply on.
const spamRefused = "said: 554 5.7.1 Gtube pattern"

// CountSpam counts the spam submitted and refused, by phase: a spam
// message is refused when the sender's log says it bounced with
// rspamd's reply (bounced: its status=bounced lines by Message-ID) and
// no copy of it was delivered.
func (o *Outcome) CountSpam(spam map[string]Sent, got map[string][]time.Time, bounced map[string][]string) {
	for id, s := range spam {
		o.Spam["all"]++
		o.Spam[s.Phase]++
		ls := bounced[id]
		if len(got[id]) == 0 && len(ls) == 1 && strings.Contains(ls[0], spamRefused) {
			o.SpamRefused["all"]++
			o.SpamRefused[s.Phase]++
		} else if len(o.BadSpam) < 10 {
			o.BadSpam = append(o.BadSpam, fmt.Sprintf("%s: %d delivered, %q", id, len(got[id]), ls))
		}
	}
}

// percentile returns the p-th percentile (0–100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// DrainTimes are how long each part of one host's drain took.
type DrainTimes struct {
	Host                     string
	Propagation, TTL, Flush  time.Duration
	Total                    time.Duration
	StragglersRefused        float64 // connections answered 421 while drained
	SessionsAfter421         float64 // sessions admitted after the 421 phase began (want 0)
	OthersTransactionsDuring float64 // transactions the other hosts took during the drain
}

// ExtraDelay is the longest delay of a phase's messages beyond the
// run's median: what the phase added to a message's way.
func (o Outcome) ExtraDelay(phase string) time.Duration {
	return max(percentile(o.Delays[phase], 100)-percentile(o.Delays["all"], 50), 0)
}

// RedisTimes are what the phases of the queue's Redis measured.
type RedisTimes struct {
	// Switch is what the planned switch-over (redisha.Client.Switchover, as
	// `mxq redis switchover` runs it) did.
	Switch redisha.SwitchoverReport
	// Killed and NewPrimary are the primary killed with SIGKILL and the
	// one Sentinel promoted (host:port).
	Killed, NewPrimary string
	// Failover is from the kill to a new primary with a replica, that
	// is until mxd's writes are confirmed again.
	Failover time.Duration
	// InFlight is how many messages the queue held unacknowledged at
	// the kill: those a lost acknowledgement may deliver twice.
	InFlight int64
	// Rejoin is from the old primary's start to its replicating from
	// the new one.
	Rejoin time.Duration
	// Twice is what the back-to-back failovers measured.
	Twice TwiceTimes
	// Failovers are every change of primary the sentinels made in the
	// run, in order.
	Failovers []Failover
}

// TwiceTimes are what the back-to-back failovers measured, each from the
// first kill.
type TwiceTimes struct {
	// Killed are the primary killed first and the replica promoted in
	// its place, killed as soon as it was; Primary is the server that
	// is primary at the end (host:port).
	Killed  []string
	Primary string
	// Promoted is until the sentinels had promoted the second server;
	// SecondReplicas is how many replicas it had online at its kill.
	Promoted       time.Duration
	SecondReplicas int
	// Third is until the sentinels had promoted the last server,
	// Failover until it had a replica (writes are confirmed again),
	// Healthy until it had both.
	Third, Failover, Healthy time.Duration
}

// Monitoring is what Prometheus saw of the run.
type Monitoring struct {
	// Alerts are the alerts seen firing, per phase.
	Alerts map[string][]string
	// PollErrors counts failed reads of Prometheus's alerts.
	PollErrors int
	// ConsumerIdle and ConsumerFor are the exporter's -reader-idle and
	// the consumer-down alert's for: in this run; ConsumerFired is from
	// listd's kill to the alert firing, ConsumerCleared from its start
	// to the alert clearing.
	ConsumerIdle, ConsumerFor, ConsumerFired, ConsumerCleared time.Duration
}

// Print writes the summary tables.
func (o Outcome) Print(w io.Writer, phases []string, drains []DrainTimes, rt RedisTimes, mon Monitoring) {
	fmt.Fprintf(w, "\nmessages sent %d, delivered %d, missing %d, duplicates %d, deferrals at the sender %d; spam sent %d, refused %d, deferred %d times\n\n",
		o.Sent, o.Delivered, o.Missing, o.Duplicates, o.Deferrals["all"], o.Spam["all"], o.SpamRefused["all"], o.SpamDeferrals)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tmessages\tlost\tdeferrals\tduplicates\tspam\trefused\tdelay p50\tp99\tmax\tmax extra\talerts firing\t")
	all := map[string]bool{}
	for _, as := range mon.Alerts {
		for _, a := range as {
			all[a] = true
		}
	}
	alerts := maps.Clone(mon.Alerts)
	if alerts == nil {
		alerts = map[string][]string{}
	}
	alerts["all"] = slices.Sorted(maps.Keys(all))
	for _, p := range append([]string{"all"}, phases...) {
		ds := o.Delays[p]
		dups, lost := o.Duplicates, o.Missing
		if p != "all" {
			dups, lost = o.DupByPhase[p], o.LostByPhase[p]
		}
		fired := strings.Join(alerts[p], " ")
		if fired == "" {
			fired = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", p, len(ds)+lost, lost, o.Deferrals[p], dups,
			o.Spam[p], o.SpamRefused[p], round(percentile(ds, 50)), round(percentile(ds, 99)), round(percentile(ds, 100)), round(o.ExtraDelay(p)), fired)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nprometheus (rules' for: and the exporter's reader idle at 1/%d): MxqNothingConsumes fired %s after listd's kill (reader idle %s + for %s), cleared %s after its start; %d failed polls\n",
		TimeScale, round(mon.ConsumerFired), mon.ConsumerIdle, mon.ConsumerFor, round(mon.ConsumerCleared), mon.PollErrors)
	if rt.Switch.From != "" {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "queue's Redis\tfrom\tto\ttook\t\t")
		fmt.Fprintf(tw, "switch-over\t%s\t%s\t%s\twrites paused\t\n", rt.Switch.From, rt.Switch.To, round(rt.Switch.Paused))
		fmt.Fprintf(tw, "kill -9 of the primary\t%s\t%s\t%s\tto a new primary with a replica; %d messages in flight\t\n",
			rt.Killed, rt.NewPrimary, round(rt.Failover), rt.InFlight)
		fmt.Fprintf(tw, "old primary back\t%s\t\t%s\tfrom its start to replicating\t\n", rt.Killed, round(rt.Rejoin))
		if tt := rt.Twice; len(tt.Killed) == 2 {
			fmt.Fprintf(tw, "back-to-back failovers\t%s, %s\t%s\t%s\tto a primary with a replica (the second killed %s after the first kill, with %d replicas online; the last promoted after %s; both replicas after %s)\t\n",
				tt.Killed[0], tt.Killed[1], tt.Primary, round(tt.Failover), round(tt.Promoted), tt.SecondReplicas, round(tt.Third), round(tt.Healthy))
		}
		tw.Flush()
	}
	if len(rt.Failovers) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "sentinels' failovers\tepoch\tfailed elections before\tfrom\tto\tinto the phase\t")
		for _, f := range rt.Failovers {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t\n", f.Phase, f.Epoch, f.Failed, f.From, f.To, round(f.After))
		}
		tw.Flush()
	}
	if len(drains) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "drained host\tpropagation\tTTL wait\tflush\ttotal\t421 to stragglers\tsessions after 421\tothers' 250s during drain\t")
	for _, d := range drains {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t\n", d.Host, round(d.Propagation), round(d.TTL), round(d.Flush), round(d.Total),
			d.StragglersRefused, d.SessionsAfter421, d.OthersTransactionsDuring)
	}
	tw.Flush()
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

// metric reads one sample of a Prometheus text exposition (name with its
// label set, e.g. `mxd_connections_refused_total{reason="draining"}`).
func metric(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
