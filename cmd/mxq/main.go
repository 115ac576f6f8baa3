// Command mxq shows and edits the mail queue shared by the MX hosts: the
// recipient registry, the queue's depth and hosts, dead letters and held
// messages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"mxq/cmd/internal/buildinfo"
	"mxq/queue"
)

// command is one subcommand of mxq. Its result goes to stdout; a
// command that takes a while reports its progress on stderr.
type command struct {
	usage string // "ARGS: what it does"
	run   func(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error
}

// commands are mxq's subcommands; a name with a space is a sub-subcommand.
var commands = map[string]command{
	"lists add": {"ADDRESS|PATTERN...: accept mail for these list addresses on every MX", listsAdd},
	"lists rm":  {"ADDRESS|PATTERN...: stop accepting mail for these (static entries only)", listsRm},
	"lists ls":  {"[-json]: show the recipient registry and where each entry comes from", listsLs},
	"stats":     {"[-json]: queue depth, dead letters, every MX host's state, and the Redis primary with its replicas and sentinels", stats},

	// Record formats and upgrades: format.go.
	"format":       {"[-json] [-reader-idle D]: which record format each MX host writes and each consumer reads, the pin, and the queued messages by format", format},
	"format pin":   {"N: MX hosts write no record format newer than N (an older one still, while a live consumer needs it); before starting a consumer that reads no newer one", formatPin},
	"format unpin": {": MX hosts write the newest record format that every live consumer reads again", formatUnpin},

	// The consumer side: peek.go, dead.go.
	"peek":       {"[-n N] [-json] | -body ID: the oldest queued messages and those waiting for a retry; -body writes one message as stored to stdout", peek},
	"dead ls":    {"[-json]: the dead letters, messages the consumers gave up on", deadLs},
	"dead show":  {"ID [-json|-body]: one dead letter with every attempt and its error; -body writes its message as stored to stdout", deadShow},
	"dead retry": {"ID...|--all [-json]: put dead letters back into the queue (delivered recipients are skipped)", deadRetry},
	"dead purge": {"ID...|--all [-json]: delete dead letters and their bodies for good", deadPurge},

	// The hold queue (a content filter's quarantine): held.go.
	"held ls":      {"[-json]: the held messages, queued but kept from the consumers by a content filter (a milter's quarantine)", heldLs},
	"held show":    {"ID [-json|-body]: one held message with its reason; -body writes it as stored to stdout", heldShow},
	"held release": {"ID...|--all [-json]: put held messages into the queue, to be delivered", heldRelease},
	"held purge":   {"ID...|--all [-json]: delete held messages and their bodies for good", heldPurge},

	// Monitoring: exporter.go.
	"exporter": {"[-listen ADDR] [-timeout D] [-reader-idle D]: serve the queue's state as Prometheus metrics (run one per installation, not one per MX host)", exporter},

	// Redis itself: redis.go.
	"redis switchover": {"[-pause D] [-json]: move the primary to a replica without losing or refusing a write (Sentinel URL only); says how long writes waited", redisSwitchover},
}

const usage = `Usage: mxq [-redis URL] [-queue NAME] COMMAND [ARGS] | mxq -version

mxq shows and edits the queue that every MX host (mxd) writes into and the
consumers (listd) read from.

MX hosts write the newest record format that every live consumer reads, so
that mxd and listd can be upgraded one host at a time in either order; see
"mxq format" and docs/redis.md ("Format versions and upgrades").

Patterns in the recipient registry use * for any run of characters other
than '/' and '@', so "~*/*@lists.example.org" accepts every list of every
owner at lists.example.org; "list+tag@…" matches an entry for "list@…".

Commands:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mxq:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mxq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL := os.Getenv("MXQ_REDIS")
	if defURL == "" {
		defURL = queue.DefaultURL
	}
	url := fs.String("redis", defURL, "Redis `URL` of the queue, one server or Redis Sentinels: "+
		"redis://SENTINEL1:26379/0?master_name=mxq&addr=SENTINEL2:26379&addr=SENTINEL3:26379 (default $MXQ_REDIS, then "+queue.DefaultURL+")")
	name := fs.String("queue", queue.DefaultOptions().Name, "queue `name` (the hash tag of its keys)")
	showVersion := fs.Bool("version", false, "print the version and the record formats mxq reads, and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			a, d, _ := strings.Cut(commands[n].usage, ": ")
			fmt.Fprintf(stderr, "  %s\n      %s\n", strings.TrimSpace("mxq "+n+" "+a), d)
		}
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "mxq", buildinfo.Version())
		fmt.Fprintf(stdout, "record formats: reads %s; writes none (mxq dead retry queues a record again in its own format)\n", queue.FormatList(queue.Formats()))
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return usageError{"no command given"}
	}
	// A sub-subcommand ("format pin") wins over its command ("format").
	var cmd command
	ok, n := false, 0
	if len(rest) > 1 {
		cmd, ok = commands[rest[0]+" "+rest[1]]
		n = 2
	}
	if !ok {
		cmd, ok = commands[rest[0]]
		n = 1
	}
	if !ok {
		fs.Usage()
		return usageError{fmt.Sprintf("unknown command %q", strings.Join(rest[:min(2, len(rest))], " "))}
	}
	qopt := queue.DefaultOptions()
	qopt.Name = *name
	q, err := queue.Open(*url, qopt)
	if err != nil {
		return err
	}
	defer q.Close()
	return cmd.run(ctx, q, rest[n:], stdout, stderr)
}
