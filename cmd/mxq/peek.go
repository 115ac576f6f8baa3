package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"mxq/queue"
)

// peekResult is what mxq peek -json prints.
type peekResult struct {
	Ready     []queue.Record    `json:"ready"`
	Scheduled []queue.Scheduled `json:"scheduled"`
}

func peek(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	a, err := parseArgs("peek", args, "n", "body")
	if err != nil {
		return err
	}
	if a.body {
		if len(a.rest) != 1 {
			return usageError{"peek -body: give one queue id, as shown by mxq peek"}
		}
		body, err := q.Body(ctx, a.rest[0])
		return writeBody(stdout, body, err)
	}
	if len(a.rest) > 0 {
		return usageError{fmt.Sprintf("peek: unexpected argument %q (mxq peek -body ID shows one message)", a.rest[0])}
	}
	ready, err := q.Peek(ctx, a.n)
	if err != nil {
		return err
	}
	sched, err := q.Scheduled(ctx, a.n)
	if err != nil {
		return err
	}
	if a.json {
		res := peekResult{Ready: ready, Scheduled: sched}
		if res.Ready == nil {
			res.Ready = []queue.Record{}
		}
		if res.Scheduled == nil {
			res.Scheduled = []queue.Scheduled{}
		}
		return writeJSON(stdout, res)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGE\tHOST\tFROM\tRCPTS\tSIZE")
	line := func(r *queue.Record, state string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, state, age(r.Arrived), r.Host, orNull(r.From),
			short(strings.Join(r.Recipients(), ","), 50), r.Size)
	}
	for i := range ready {
		line(&ready[i], "ready")
	}
	for _, s := range sched {
		state := fmt.Sprintf("retry in %s (%d failed)", time.Until(s.Due).Round(time.Second), s.Attempts)
		if time.Until(s.Due) <= 0 {
			state = fmt.Sprintf("retry due (%d failed)", s.Attempts)
		}
		line(s.Record, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d ready, %d waiting for a retry (at most %d of each shown; -n N for more)\n", len(ready), len(sched), a.n)
	return nil
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}
