package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"mxq/queue"
	"mxq/redisha"
)

const switchoverUsage = `Usage: mxq -redis SENTINEL-URL redis switchover [-pause D] [-json]

Moves the queue's primary Redis to one of its replicas, for maintenance of
the primary's host, without losing a write and without refusing one:

  find      ask the sentinels of the URL for the primary and the replicas
            Sentinel may promote; refuse unless every sentinel that answers
            names the same primary, no failover is running, and each of
            those replicas follows the primary
  pause     CLIENT PAUSE WRITE on the primary: writes wait (at most -pause;
            Redis ends the pause by itself even if mxq is killed)
  sync      wait until each of those replicas has every write (its offset
            equals the primary's); not within half of -pause: resume the
            writes and refuse
  failover  SENTINEL FAILOVER
  promoted  wait until the sentinel names a new primary and it answers
            role:master
  demote    REPLICAOF on the old primary, so the writes held there are
            answered READONLY, and go to the new primary when tried again
            (mxd rides through it), instead of landing where they would be
            lost; wait until the new primary has a replica online, for
            min-replicas-to-write
  unpause   CLIENT UNPAUSE; how long writes waited is reported
  agree     wait until every sentinel of the URL names the new primary

SENTINEL FAILOVER alone promotes a replica at once, whatever it lacks: a
write the old primary had acknowledged but not yet passed on is lost.

Progress goes to stderr, the result to stdout; with -json, progress as JSON
lines on stderr and the result as JSON on stdout. Exit status 1 when
refused or failed: the message says what was done and what to fix.

Flags:
`

// switchoverResult is the -json result.
type switchoverResult struct {
	Master string `json:"master"`
	From   string `json:"from"`
	To     string `json:"to"`
	// WritesWaited is how long writes were held on the old primary.
	WritesWaited float64 `json:"writes_waited_seconds"`
	Took         float64 `json:"took_seconds"`
}

func redisSwitchover(ctx context.Context, q *queue.Queue, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redis switchover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, switchoverUsage); fs.PrintDefaults() }
	pause := fs.Duration("pause", 10*time.Second, "the longest writes may wait on the old primary")
	asJSON := fs.Bool("json", false, "progress as JSON lines on stderr, the result as JSON on stdout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("redis switchover: unexpected argument %q", fs.Arg(0))}
	}
	if *pause < time.Second {
		return usageError{fmt.Sprintf("redis switchover: -pause %v is too short: Sentinel needs about a second to see the new primary", *pause)}
	}
	progress := func(s redisha.SwitchoverStep) {
		if *asJSON {
			json.NewEncoder(stderr).Encode(s)
			return
		}
		fmt.Fprintf(stderr, "%s %-8s %s\n", s.Time.Format("15:04:05.000"), s.Step, s.Msg)
	}
	rep, err := q.Redis().Switchover(ctx, redisha.SwitchoverOptions{Pause: *pause, Progress: progress})
	if rep == nil {
		return err
	}
	if *asJSON {
		if jerr := writeJSON(stdout, switchoverResult{Master: rep.Master, From: rep.From, To: rep.To,
			WritesWaited: rep.Paused.Seconds(), Took: rep.Took.Seconds()}); jerr != nil {
			return errors.Join(err, jerr)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: primary moved from %s to %s; writes waited %v, the switch-over took %v\n",
		rep.Master, rep.From, rep.To, rep.Paused.Round(time.Millisecond), rep.Took.Round(time.Millisecond))
	return err
}
