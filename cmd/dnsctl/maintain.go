package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"mxq/dnsctl"
)

// maintain drains host, runs argv, and restores host (also when argv
// fails, unless restoreOnFailure is false).
func maintain(ctx context.Context, m *dnsctl.Maintenance, o *out, host string, argv []string, restoreOnFailure bool) int {
	if rc := o.report(m.Drain(ctx, host)); rc != exitOK {
		return rc
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, o.stderr, o.stderr
	fmt.Fprintf(o.stderr, "dnsctl: %s is drained; running %q\n", host, argv)
	cmdErr := cmd.Run()
	if cmdErr != nil {
		fmt.Fprintf(o.stderr, "dnsctl: command failed: %v\n", cmdErr)
		if !restoreOnFailure {
			fmt.Fprintf(o.stderr, "dnsctl: leaving %s drained (-no-restore-on-failure); run 'dnsctl restore %s' when it is fixed\n", host, host)
			return exitCommand
		}
	}
	if rc := o.report(m.Restore(ctx, host)); rc != exitOK {
		return rc
	}
	if cmdErr != nil {
		return exitCommand
	}
	return exitOK
}
