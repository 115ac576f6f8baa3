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

// The hold queue: messages a content filter (a milter's quarantine) had
// mxd queue held, which no consumer reads until they are released.

func heldLs(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	a, err := parseArgs("held ls", args)
	if err != nil {
		return err
	}
	if len(a.rest) > 0 {
		return usageError{fmt.Sprintf("held ls: unexpected argument %q (mxq held show ID shows one)", a.rest[0])}
	}
	hs, err := q.HeldMessages(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if hs == nil {
			hs = []queue.HeldMessage{}
		}
		return writeJSON(stdout, hs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHELD SINCE\tSIZE\tFROM\tRCPTS\tREASON")
	for _, h := range hs {
		from, rcpts, size := "?", "?", "?"
		if h.Record != nil {
			from, rcpts, size = orNull(h.Record.From), strings.Join(h.Record.Recipients(), ","), fmt.Sprint(h.Record.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, ago(h.HeldAt), size, from, short(rcpts, 40), short(h.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(hs) > 0 {
		fmt.Fprintf(stdout, "%d held messages; mxq held show ID [-body] to read one, mxq held release|purge ID|--all\n", len(hs))
	}
	return nil
}

func heldShow(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	a, err := parseArgs("held show", args, "body")
	if err != nil {
		return err
	}
	if len(a.rest) != 1 {
		return usageError{"held show: give one queue id, as shown by mxq held ls"}
	}
	if a.body {
		body, err := q.HeldBody(ctx, a.rest[0])
		return writeBody(stdout, body, err)
	}
	h, err := q.HeldMessage(ctx, a.rest[0])
	if err != nil {
		return err
	}
	if a.json {
		return writeJSON(stdout, h)
	}
	fmt.Fprintf(stdout, "queue id:   %s\n", h.ID)
	fmt.Fprintf(stdout, "held since: %s (%s)\n", h.HeldAt.UTC().Format(time.RFC3339), ago(h.HeldAt))
	fmt.Fprintf(stdout, "reason:     %s\n", shown(h.Reason))
	if h.Record == nil {
		fmt.Fprintf(stdout, "record:     cannot be read: %s\n", shown(h.RecordError))
		return nil
	}
	showRecord(stdout, h.Record, nil)
	return nil
}

func heldRelease(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error {
	return eachID(ctx, "held release", args, stdout, stderr, idsOf(q.HeldMessages, heldID), q.ReleaseHeld, "released into the queue")
}

func heldPurge(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error {
	return eachID(ctx, "held purge", args, stdout, stderr, idsOf(q.HeldMessages, heldID), q.PurgeHeld, "deleted for good")
}

func heldID(h queue.HeldMessage) string { return h.ID }
