package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"mxq/queue"
	"mxq/redisha"
)

// stats shows the queue, the MX hosts and the queue's Redis.
func stats(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	asJSON, err := jsonFlag("stats", args)
	if err != nil {
		return err
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "depth %d (pending at a consumer %d, waiting for a retry %d), dead letters %d", st.Depth, st.Pending, st.Retrying, st.Dead)
	if st.Held > 0 {
		fmt.Fprintf(stdout, ", held %d (mxq held ls)", st.Held)
	}
	if len(st.Left) > 0 {
		fmt.Fprintf(stdout, ", left in a format too new for its consumer %d", len(st.Left))
	}
	if !st.Oldest.IsZero() {
		fmt.Fprintf(stdout, ", oldest %s ago", time.Since(st.Oldest).Round(time.Second))
	}
	fmt.Fprintln(stdout)
	names := make([]string, 0, len(st.Hosts))
	for n := range st.Hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tSESSIONS\tINFLIGHT\tLAST SEEN\tVERSION\tREADS\tWRITES")
	for _, n := range names {
		h := st.Hosts[n]
		state, seen := "up", "-"
		switch {
		case !h.Alive:
			state = "gone"
		case h.Draining:
			state = "draining"
		case h.DrainFlag:
			state = "drain requested"
		}
		if !h.LastSeen.IsZero() {
			seen = time.Since(h.LastSeen).Round(time.Second).String() + " ago"
		}
		reads, writes := "-", "-"
		if len(h.Reads) > 0 {
			reads, writes = queue.FormatList(h.Reads), strconv.Itoa(h.Writes)
		} else if h.Alive {
			writes = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", n, state, h.Sessions, h.Inflight, seen, orDash(h.Version), reads, writes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := consumerFormats(stdout, st.Consumers); err != nil {
		return err
	}
	if len(st.Left) > 0 {
		fmt.Fprintf(stdout, "\n%d entries left for a consumer that reads their format:\n", len(st.Left))
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFORMAT\tLEFT BY\tAGO")
		for _, e := range st.Left {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.ID, e.Format, e.Consumer, time.Since(e.At).Round(time.Second))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if st.Redis != nil {
		return writeReplication(stdout, st.Redis)
	}
	return nil
}

// writeReplication shows the primary, its replicas and how far behind
// each is, and what each sentinel says.
func writeReplication(w io.Writer, r *redisha.Replication) error {
	fmt.Fprintf(w, "\nredis %s: role %s, offset %d, %d replicas\n", r.Primary, r.Role, r.Offset, len(r.Replicas))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Replicas) > 0 {
		fmt.Fprintln(tw, "REPLICA\tSTATE\tBEHIND\tLAST ACK")
		for _, rep := range r.Replicas {
			fmt.Fprintf(tw, "%s\t%s\t%d bytes\t%ds ago\n", rep.Addr, rep.State, rep.Behind, rep.LagSeconds)
		}
	}
	if len(r.Sentinels) > 0 {
		fmt.Fprintln(tw, "SENTINEL\tNAMES PRIMARY\tFLAGS\tQUORUM\tREPLICAS\tOTHER SENTINELS")
		for _, s := range r.Sentinels {
			if s.Err != "" {
				fmt.Fprintf(tw, "%s\tno answer: %s\n", s.Addr, s.Err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", s.Addr, s.Primary, s.Flags, s.Quorum, s.Replicas, s.Sentinels)
		}
	}
	return tw.Flush()
}
