package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mxq/queue"
)

// cmdArgs are the flags the dead and peek subcommands take, in any
// position: -json, and where the command allows them --all, -n N, -body.
type cmdArgs struct {
	json, all, body bool
	n               int64
	rest            []string
}

// parseArgs reads args; allowed names the flags other than -json that
// the command takes ("all", "n", "body").
func parseArgs(name string, args []string, allowed ...string) (cmdArgs, error) {
	a := cmdArgs{n: 20}
	for i := 0; i < len(args); i++ {
		f := strings.TrimLeft(args[i], "-")
		ok := slices.Contains(allowed, f)
		switch {
		case !strings.HasPrefix(args[i], "-"):
			a.rest = append(a.rest, args[i])
		case f == "json":
			a.json = true
		case f == "all" && ok:
			a.all = true
		case f == "body" && ok:
			a.body = true
		case f == "n" && ok && i+1 < len(args):
			n, err := strconv.ParseInt(args[i+1], 10, 64)
			if err != nil || n < 1 {
				return a, usageError{fmt.Sprintf("%s: -n wants a positive number, not %q", name, args[i+1])}
			}
			a.n, i = n, i+1
		default:
			return a, usageError{fmt.Sprintf("%s: unknown flag %q", name, args[i])}
		}
	}
	if a.body && a.json {
		return a, usageError{name + ": -body writes the message itself; it does not go with -json"}
	}
	return a, nil
}

// writeBody copies a stored message to stdout as it is read from Redis,
// a few chunks at a time, so that a big one is never held whole.
func writeBody(stdout io.Writer, body io.Reader, err error) error {
	if err != nil {
		return err
	}
	_, err = io.Copy(stdout, body)
	return err
}

func deadLs(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	a, err := parseArgs("dead ls", args)
	if err != nil {
		return err
	}
	if len(a.rest) > 0 {
		return usageError{fmt.Sprintf("dead ls: unexpected argument %q (mxq dead show ID shows one)", a.rest[0])}
	}
	ds, err := q.DeadLetters(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if ds == nil {
			ds = []queue.DeadLetter{}
		}
		return writeJSON(stdout, ds)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEAD SINCE\tATTEMPTS\tFROM\tRCPTS\tREASON")
	for _, d := range ds {
		from, rcpts := "?", "?"
		if d.Record != nil {
			from, rcpts = orNull(d.Record.From), strings.Join(d.Record.Recipients(), ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, ago(d.DeadAt), len(d.Attempts), from, short(rcpts, 40), short(d.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ds) > 0 {
		fmt.Fprintf(stdout, "%d dead letters; mxq dead show ID for every attempt, mxq dead retry ID|--all once fixed\n", len(ds))
	}
	return nil
}

func deadShow(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	a, err := parseArgs("dead show", args, "body")
	if err != nil {
		return err
	}
	if len(a.rest) != 1 {
		return usageError{"dead show: give one queue id, as shown by mxq dead ls"}
	}
	if a.body {
		body, err := q.DeadBody(ctx, a.rest[0])
		return writeBody(stdout, body, err)
	}
	d, err := q.DeadLetter(ctx, a.rest[0])
	if err != nil {
		return err
	}
	if a.json {
		return writeJSON(stdout, d)
	}
	fmt.Fprintf(stdout, "queue id:   %s\n", d.ID)
	fmt.Fprintf(stdout, "dead since: %s (%s)\n", d.DeadAt.UTC().Format(time.RFC3339), ago(d.DeadAt))
	fmt.Fprintf(stdout, "reason:     %s\n", shown(d.Reason))
	if d.Record == nil {
		fmt.Fprintf(stdout, "record:     cannot be read: %s\n", shown(d.RecordError))
	} else {
		showRecord(stdout, d.Record, func(addr string) string {
			if slices.Contains(d.Delivered, addr) {
				return "delivered (a retry skips it)"
			} else if why, ok := d.Rejected[addr]; ok {
				return "rejected: " + why
			}
			return "pending"
		})
	}
	fmt.Fprintf(stdout, "attempts:   %d\n", len(d.Attempts))
	for _, at := range d.Attempts {
		who := ""
		if at.Consumer != "" {
			who = " by " + at.Consumer
		}
		fmt.Fprintf(stdout, "  #%d %s%s: %s\n", at.N, at.End.UTC().Format(time.RFC3339), who, shown(at.Error))
	}
	return nil
}

func deadRetry(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error {
	return eachID(ctx, "dead retry", args, stdout, stderr, idsOf(q.DeadLetters, deadID), q.RetryDead, "put back into the queue")
}

func deadPurge(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error {
	return eachID(ctx, "dead purge", args, stdout, stderr, idsOf(q.DeadLetters, deadID), q.PurgeDead, "deleted for good")
}

func deadID(d queue.DeadLetter) string { return d.ID }

// idsOf lists the queue ids of what list returns, for --all.
func idsOf[T any](list func(context.Context) ([]T, error), id func(T) string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		all, err := list(ctx)
		var ids []string
		for _, x := range all {
			ids = append(ids, id(x))
		}
		return ids, err
	}
}

// eachID applies do to the messages named in args, or to every one that
// all lists with --all, showing its progress on a terminal (not with
// -json).
func eachID(ctx context.Context, name string, args []string, stdout, stderr io.Writer,
	all func(context.Context) ([]string, error), do func(context.Context, string) error, done string) error {
	a, err := parseArgs(name, args, "all")
	if err != nil {
		return err
	}
	ids := a.rest
	switch {
	case a.all && len(ids) > 0:
		return usageError{name + ": give queue ids or --all, not both"}
	case a.all:
		if ids, err = all(ctx); err != nil {
			return err
		}
	case len(ids) == 0:
		return usageError{name + ": give a queue id (mxq " + strings.Fields(name)[0] + " ls) or --all"}
	}
	var failed []error
	okIDs := []string{}
	prog := newProgress(stderr, name, len(ids), a.json)
	for i, id := range ids {
		if err := do(ctx, id); err != nil {
			failed = append(failed, err)
		} else {
			okIDs = append(okIDs, id)
		}
		prog.step(i+1, len(failed))
	}
	prog.end()
	if a.json {
		if err := writeJSON(stdout, map[string][]string{"ids": okIDs}); err != nil {
			return err
		}
	} else {
		for _, id := range okIDs {
			fmt.Fprintf(stdout, "%s %s\n", id, done)
		}
	}
	return errors.Join(failed...)
}

// showRecord writes the sender, arrival and recipients of r, each
// recipient with its state when state is not nil.
func showRecord(stdout io.Writer, r *queue.Record, state func(addr string) string) {
	fmt.Fprintf(stdout, "from:       <%s>\n", shown(r.From))
	fmt.Fprintf(stdout, "arrived:    %s at %s from %s (%s), %d bytes\n", r.Arrived.UTC().Format(time.RFC3339), r.Host, r.ClientIP, shown(r.HELO), r.Size)
	fmt.Fprintln(stdout, "recipients:")
	for _, rc := range r.Rcpts {
		if state == nil {
			fmt.Fprintf(stdout, "  <%s>\n", shown(rc.Addr))
		} else {
			fmt.Fprintf(stdout, "  <%s>  %s\n", shown(rc.Addr), shown(state(rc.Addr)))
		}
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func orNull(from string) string {
	if from == "" {
		return "<>"
	}
	return shown(from)
}

// short is s shown, cut to n characters.
func short(s string, n int) string {
	s = shown(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
