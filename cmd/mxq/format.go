package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"mxq/queue"
)

// formatResult is what mxq format -json prints.
type formatResult struct {
	// Pin is the cap of mxq format pin, 0 for none.
	Pin int `json:"pin"`
	// Hosts are the MX hosts with the format each writes.
	Hosts []queue.HostStatus `json:"hosts"`
	// Consumers are the consumers with the formats each reads.
	Consumers []queue.Reader `json:"consumers"`
	// Choice is what an MX host with reader_idle ReaderIdle would write
	// now, and why.
	Choice     int    `json:"choice"`
	Why        string `json:"why"`
	ReaderIdle string `json:"reader_idle"`
	// Queued counts the messages queued by record format.
	Queued map[string]int64 `json:"queued"`
}

func format(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("format", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	idle := fs.Duration("reader-idle", queue.DefaultReaderIdle, "count a consumer as live until it has been unseen this long, as mxd's reader_idle does")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("format: unexpected argument %q (mxq format pin N, mxq format unpin)", fs.Arg(0))}
	}
	hosts, err := q.Hosts(ctx)
	if err != nil {
		return err
	}
	readers, err := q.Readers(ctx, *idle)
	if err != nil {
		return err
	}
	pin, err := q.FormatPin(ctx)
	if err != nil {
		return err
	}
	queued, err := q.QueuedFormats(ctx)
	if err != nil {
		return err
	}
	v, why := queue.ChooseFormat(readers, pin)
	res := formatResult{Pin: pin, Hosts: hosts, Consumers: readers, Choice: v, Why: why, ReaderIdle: idle.String(), Queued: map[string]int64{}}
	for f, n := range queued {
		res.Queued[strconv.Itoa(f)] = n
	}
	if *asJSON {
		if res.Consumers == nil {
			res.Consumers = []queue.Reader{}
		}
		return writeJSON(stdout, res)
	}
	if pin == 0 {
		fmt.Fprintln(stdout, "pin: none (mxq format pin N caps the format every MX host writes)")
	} else {
		fmt.Fprintf(stdout, "pin: %d (MX hosts write no newer format; mxq format unpin removes it)\n", pin)
	}
	fmt.Fprintf(stdout, "an MX host with reader_idle %v writes now: %d, %s\n\n", *idle, v, why)
	if err := hostFormats(stdout, hosts); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := consumerFormats(stdout, readers); err != nil {
		return err
	}
	vs := make([]int, 0, len(queued))
	for f := range queued {
		vs = append(vs, f)
	}
	slices.Sort(vs)
	fmt.Fprint(stdout, "\nqueued messages by format:")
	if len(vs) == 0 {
		fmt.Fprint(stdout, " none")
	}
	for i, f := range vs {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(stdout, "%s %d: %d", sep, f, queued[f])
	}
	fmt.Fprintln(stdout)
	return nil
}

func formatPin(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 {
		return usageError{"format pin: give one format version, e.g. mxq format pin 1"}
	}
	v, err := strconv.Atoi(args[0])
	if err != nil || v < queue.OldestFormat {
		return usageError{fmt.Sprintf("format pin %q: want a format version, %d or newer", args[0], queue.OldestFormat)}
	}
	if err := q.SetFormatPin(ctx, v); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pinned: MX hosts write no format newer than %d from their next heartbeat; mxq format shows what each writes\n", v)
	return nil
}

func formatUnpin(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	if len(args) != 0 {
		return usageError{fmt.Sprintf("format unpin: unexpected argument %q", args[0])}
	}
	if err := q.SetFormatPin(ctx, 0); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "unpinned: MX hosts write the newest format every live consumer reads")
	return nil
}

// hostFormats is the table of MX hosts with their versions and formats.
func hostFormats(w io.Writer, hosts []queue.HostStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MX HOST\tSTATE\tVERSION\tREADS\tWRITES")
	for _, h := range hosts {
		state, reads, writes := "up", "-", "-"
		if !h.Alive {
			state = "gone"
		}
		if len(h.Reads) > 0 {
			reads = queue.FormatList(h.Reads)
		}
		if h.Writes > 0 {
			writes = strconv.Itoa(h.Writes)
		} else if h.Alive {
			writes = "? (announces nothing: a release before announcements)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Host, state, orDash(h.Version), reads, writes)
	}
	return tw.Flush()
}

// consumerFormats is the table of consumers with their versions and
// formats. Consumers write no records: mxq dead retry and retries keep a
// record's own format.
func consumerFormats(w io.Writer, readers []queue.Reader) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tSTATE\tIDLE\tPENDING\tVERSION\tREADS\tWRITES")
	for _, r := range readers {
		name, state := r.Group+"/"+r.Name, "live"
		if r.Name == "" {
			name = fmt.Sprintf("(%d unnamed connections reading)", r.Connections)
		}
		if !r.Live {
			state = "gone"
		}
		reads := queue.FormatList(r.Reads)
		if !r.Announced {
			reads += " (announces nothing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t-\n", name, state, r.Idle.Round(time.Second), r.Pending, orDash(r.Program), reads)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
