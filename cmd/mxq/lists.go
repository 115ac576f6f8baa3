package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"mxq/queue"
)

func listsAdd(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usageError{"lists add: give at least one address or pattern, e.g. mxq lists add '~*/*@lists.example.org'"}
	}
	if err := q.AddRecipients(ctx, args...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %d entries; every MX accepts them within twice its registry_ttl\n", len(args))
	return nil
}

func listsRm(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usageError{"lists rm: give at least one address or pattern as shown by mxq lists ls"}
	}
	if err := q.RemoveRecipients(ctx, args...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d entries\n", len(args))
	return nil
}

func listsLs(ctx context.Context, q *queue.Queue, args []string, stdout, _ io.Writer) error {
	asJSON, err := jsonFlag("lists ls", args)
	if err != nil {
		return err
	}
	entries, err := q.Registry(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if entries == nil {
			entries = []queue.RegistryEntry{}
		}
		return writeJSON(stdout, entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tSOURCE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\n", e.Pattern, e.Source)
	}
	return tw.Flush()
}

// jsonFlag parses the one flag most subcommands take.
func jsonFlag(name string, args []string) (bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := fs.Parse(args); err != nil {
		return false, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	return *asJSON, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
