package main

import (
	"context"
	"time"

	"mxq/internal/rspamd"
)

// startRspamd starts the bench's rspamd at its first call (it takes
// about 25 s) and returns it: Debian's rspamd with the configuration of
// internal/rspamd (its proxy worker as a milter on a free loopback port,
// the modules that would use the network off), the one milter of every
// -rspamd target, so that Postfix and mxd get the same filter.
func (b *bench) startRspamd(ctx context.Context) (*rspamd.Server, error) {
	if b.rspamd != nil {
		return b.rspamd, nil
	}
	b.logf("starting rspamd (about 25 s)")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	r, err := rspamd.Start(ctx)
	if err != nil {
		return nil, err
	}
	b.onExit(r.Stop)
	b.rspamd = r
	b.logf("rspamd milter on %s (pid %d)", r.Addr, r.Pid())
	return r, nil
}
