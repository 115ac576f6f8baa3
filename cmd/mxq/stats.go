package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"mxq/queue"
)

func stats(ctx context.Context, q *queue.Queue, args []string, stdout io.Writer) error {
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
	fmt.Fprintln(tw, "HOST\tSTATE\tSESSIONS\tINFLIGHT\tLAST SEEN\tVERSION")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", n, state, h.Sessions, h.Inflight, seen, h.Version)
	}
	return tw.Flush()
}
