package redisha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRefused is wrapped by the errors of a switch-over that did not
// start, or stopped before Sentinel was asked to fail over: nothing was
// changed, and writes were not held longer than the check took.
var ErrRefused = errors.New("switch-over refused")

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// SwitchoverOptions bound a planned switch-over. Zero values take the
// defaults in brackets.
type SwitchoverOptions struct {
	// Pause is the longest writes may wait on the old primary [10s]. It
	// is the bound of the CLIENT PAUSE itself, so Redis lets the writes
	// go on its own even when the switch-over is killed half-way. The
	// replicas must catch up within half of it.
	Pause time.Duration
	// Settle bounds the wait, after writes resume, until every sentinel
	// of the URL names the new primary [30s].
	Settle time.Duration
	// Progress, when set, is told of each step as it happens.
	Progress func(SwitchoverStep)
}

// SwitchoverStep is one step of a switch-over, for progress lines.
type SwitchoverStep struct {
	Time time.Time `json:"time"`
	// Step is find, pause, sync, failover, promoted, demote, unpause,
	// agree or done.
	Step string `json:"step"`
	Msg  string `json:"msg"`
}

// SwitchoverReport is what a switch-over did.
type SwitchoverReport struct {
	Master string `json:"master"` // the name the sentinels monitor
	From   string `json:"from"`   // the old primary
	To     string `json:"to"`     // the new primary
	// Paused is how long writes were held on the old primary: from
	// before CLIENT PAUSE was sent to after CLIENT UNPAUSE was answered.
	Paused time.Duration `json:"-"`
	// Took is the whole switch-over, until every sentinel named To.
	Took time.Duration `json:"-"`
}

// Switchover moves the primary to one of its replicas without losing a
// write and without refusing one: it holds writes on the primary (CLIENT
// PAUSE WRITE), waits until every replica Sentinel might promote has
// every write, asks Sentinel to fail over, makes the old primary a
// replica of the new one while writes are still held, and lets them go:
// they then meet READONLY on the old primary, and a client that tries
// again (mxd rides through it) finds the new one.
//
// SENTINEL FAILOVER alone would promote a replica at once, whatever it
// lacks: a write the old primary acknowledged but had not yet passed on
// would be lost when the old primary becomes a replica, unless its
// client had waited (WAIT) for a replica.
//
// It needs a Client opened over Sentinel, and refuses (ErrRefused) when
// the sentinels disagree, a failover is already running, or a replica
// that Sentinel could promote is not in step with the primary.
func (c *Client) Switchover(ctx context.Context, opt SwitchoverOptions) (*SwitchoverReport, error) {
	if c.sentinels == nil {
		return nil, refused("the Redis URL names one server, not Sentinels: give the Sentinel URL the daemons use, " +
			"redis://SENTINEL1:26379/0?master_name=mxq&addr=SENTINEL2:26379&addr=SENTINEL3:26379")
	}
	if opt.Pause <= 0 {
		opt.Pause = 10 * time.Second
	}
	if opt.Settle <= 0 {
		opt.Settle = 30 * time.Second
	}
	sw := &switchover{s: c.sentinels, opt: opt, timeout: c.timeout, start: time.Now(),
		clients: make(map[string]*redis.Client)}
	defer sw.close()
	return sw.run(ctx)
}

// switchover is one run of Switchover.
type switchover struct {
	s       *sentinelSet
	opt     SwitchoverOptions
	timeout time.Duration // of each command
	start   time.Time

	leader     *redis.SentinelClient // the sentinel asked to fail over
	leaderAddr string
	old        string                   // the primary's address
	oldc       *redis.Client            // to it
	candidates []string                 // replicas Sentinel may promote
	clients    map[string]*redis.Client // by address
}

func (sw *switchover) close() {
	if sw.leader != nil {
		sw.leader.Close()
	}
	for _, c := range sw.clients {
		c.Close()
	}
}

func (sw *switchover) progress(step, format string, a ...any) {
	if sw.opt.Progress != nil {
		sw.opt.Progress(SwitchoverStep{Time: time.Now(), Step: step, Msg: fmt.Sprintf(format, a...)})
	}
}

// direct returns the client of the server at addr, made once, closed
// with sw.
func (sw *switchover) direct(addr string) *redis.Client {
	if c, ok := sw.clients[addr]; ok {
		return c
	}
	c := sw.s.direct(addr)
	sw.clients[addr] = c
	return c
}

func (sw *switchover) cmdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, sw.timeout)
}

func (sw *switchover) run(ctx context.Context) (*SwitchoverReport, error) {
	if err := sw.find(ctx); err != nil {
		return nil, err
	}
	pausedAt, err := sw.pause(ctx)
	if err != nil {
		return nil, err
	}
	pauseEnd := pausedAt.Add(sw.opt.Pause)
	if err := sw.sync(ctx, pausedAt.Add(sw.opt.Pause/2)); err != nil {
		return nil, errors.Join(err, sw.unpause(ctx))
	}
	if err := sw.failover(ctx); err != nil {
		return nil, errors.Join(err, sw.unpause(ctx))
	}
	// From here on Sentinel is promoting a replica: writes let go on the
	// old primary now could be lost when it is made a replica, so an
	// error leaves them held until the pause ends by itself.
	held := func(err error) error {
		return fmt.Errorf("%w; writes on %s stay held until %s, when the pause ends by itself; "+
			"see SENTINEL MASTER %s on the sentinels and INFO replication on the servers",
			err, sw.old, pauseEnd.Format("15:04:05"), sw.s.Master)
	}
	// Keep half a second for REPLICAOF and CLIENT UNPAUSE.
	steps := pauseEnd.Add(-500 * time.Millisecond)
	to, err := sw.promoted(ctx, steps)
	if err != nil {
		return nil, held(err)
	}
	if err := sw.demote(ctx, to, steps); err != nil {
		return nil, held(err)
	}
	if err := sw.unpause(ctx); err != nil {
		return nil, err
	}
	rep := &SwitchoverReport{Master: sw.s.Master, From: sw.old, To: to, Paused: time.Since(pausedAt)}
	sw.progress("unpause", "writes resumed after %v: those held on %s are answered READONLY and go to %s when tried again",
		rep.Paused.Round(time.Millisecond), sw.old, to)
	err = sw.agree(ctx, to)
	rep.Took = time.Since(sw.start)
	if err == nil {
		sw.progress("done", "%s is the primary; writes waited %v, the switch-over took %v",
			to, rep.Paused.Round(time.Millisecond), rep.Took.Round(time.Millisecond))
	}
	return rep, err
}

// find learns the primary and the replicas Sentinel may promote, and
// refuses unless every sentinel that answers names the same primary, no
// failover runs, and each of those replicas follows the primary.
func (sw *switchover) find(ctx context.Context) error {
	views := sw.s.views(ctx, sw.timeout)
	for _, v := range views {
		switch {
		case v.Err != "":
			sw.progress("find", "sentinel %s does not answer: %s", v.Addr, v.Err)
		case strings.Contains(v.Flags, "failover_in_progress"):
			return refused("sentinel %s is failing over %s already: wait until it is done (mxq stats shows the sentinels' view)", v.Addr, sw.s.Master)
		case strings.Contains(v.Flags, "s_down") || strings.Contains(v.Flags, "o_down"):
			return refused("sentinel %s finds the primary %s down (%s): a failover, not a switch-over, is what happens next", v.Addr, v.Primary, v.Flags)
		case sw.old == "":
			sw.old, sw.leaderAddr = v.Primary, v.Addr
		case v.Primary != sw.old:
			return refused("sentinel %s names %s as primary, sentinel %s names %s: wait until they agree (mxq stats)", sw.leaderAddr, sw.old, v.Addr, v.Primary)
		}
	}
	if sw.old == "" {
		return refused("no sentinel of the URL answers for master_name %s", sw.s.Master)
	}
	sw.leader = sw.s.sentinel(sw.leaderAddr)
	sw.oldc = sw.direct(sw.old)
	cctx, cancel := sw.cmdCtx(ctx)
	defer cancel()
	info, err := serverInfo(cctx, sw.oldc)
	if err != nil {
		return refused("the primary %s does not answer INFO: %v", sw.old, err)
	}
	if info["role"] != "master" {
		return refused("the sentinels name %s as primary, but it says role:%s: wait until they agree", sw.old, info["role"])
	}
	reps, err := sw.leader.Replicas(cctx, sw.s.Master).Result()
	if err != nil {
		return refused("sentinel %s: SENTINEL REPLICAS %s: %v", sw.leaderAddr, sw.s.Master, err)
	}
	for _, r := range reps {
		addr := net.JoinHostPort(r["ip"], r["port"])
		if reason := unpromotable(r); reason != "" {
			sw.progress("find", "replica %s: %s, Sentinel will not promote it", addr, reason)
			continue
		}
		ri, err := serverInfo(cctx, sw.direct(addr))
		if err != nil {
			return refused("replica %s, which Sentinel may promote, does not answer INFO (%v): repair it, or set replica-priority 0 on it", addr, err)
		}
		// The replication id says whose stream a replica follows, where
		// master_host may be a name and the sentinels give an address.
		if ri["role"] != "slave" || ri["master_link_status"] != "up" || ri["master_replid"] != info["master_replid"] {
			return refused("replica %s, which Sentinel may promote, does not follow %s (role:%s, master %s:%s, link %s): "+
				"repair it, or set replica-priority 0 on it", addr, sw.old, ri["role"], ri["master_host"], ri["master_port"], ri["master_link_status"])
		}
		sw.candidates = append(sw.candidates, addr)
	}
	if len(sw.candidates) == 0 {
		return refused("no replica of %s is in step and promotable: add a replica (docs/redis.md) and wait until INFO replication shows it online", sw.old)
	}
	slices.Sort(sw.candidates)
	sw.progress("find", "primary %s; replicas Sentinel may promote: %s; asking sentinel %s",
		sw.old, strings.Join(sw.candidates, ", "), sw.leaderAddr)
	return nil
}

// unpromotable says why Sentinel would not pick a replica it lists, ""
// when it might: sentinel.c's choice skips replicas it finds down or
// disconnected and those with replica-priority 0.
func unpromotable(r map[string]string) string {
	for _, f := range strings.Split(r["flags"], ",") {
		switch f {
		case "s_down", "o_down", "disconnected":
			return "flagged " + f
		}
	}
	if r["slave-priority"] == "0" {
		return "replica-priority 0"
	}
	return ""
}

// pause holds writes on the primary and returns when it was asked to.
func (sw *switchover) pause(ctx context.Context) (time.Time, error) {
	cctx, cancel := sw.cmdCtx(ctx)
	defer cancel()
	at := time.Now()
	ms := strconv.FormatInt(sw.opt.Pause.Milliseconds(), 10)
	if err := sw.oldc.Do(cctx, "CLIENT", "PAUSE", ms, "WRITE").Err(); err != nil {
		return at, fmt.Errorf("client pause on %s: %w", sw.old, err)
	}
	sw.progress("pause", "writes on %s held (at most %v)", sw.old, sw.opt.Pause)
	return at, nil
}

func (sw *switchover) unpause(ctx context.Context) error {
	// Even when ctx is cancelled (Ctrl-C): writes must not wait out the
	// whole pause for nothing.
	cctx, cancel := sw.cmdCtx(context.WithoutCancel(ctx))
	defer cancel()
	if err := sw.oldc.Do(cctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		return fmt.Errorf("client unpause on %s: %w (the pause ends by itself within %v)", sw.old, err, sw.opt.Pause)
	}
	return nil
}

// sync waits until every candidate has processed every write the held
// primary has: its offset equals the primary's master_repl_offset.
func (sw *switchover) sync(ctx context.Context, deadline time.Time) error {
	for {
		cctx, cancel := sw.cmdCtx(ctx)
		pi, err := serverInfo(cctx, sw.oldc)
		if err != nil {
			cancel()
			return refused("primary %s: INFO: %v; writes resumed", sw.old, err)
		}
		off := InfoInt(pi, "master_repl_offset")
		var lag []string // why each replica not in step is not
		for _, addr := range sw.candidates {
			ri, err := serverInfo(cctx, sw.direct(addr))
			switch {
			case err != nil:
				lag = append(lag, fmt.Sprintf("%s does not answer (%v)", addr, err))
			case ri["master_link_status"] != "up":
				lag = append(lag, addr+" lost its link to the primary")
			case InfoInt(ri, "slave_repl_offset") != off:
				lag = append(lag, fmt.Sprintf("%s is %d bytes behind", addr, off-InfoInt(ri, "slave_repl_offset")))
			}
		}
		cancel()
		if len(lag) == 0 {
			sw.progress("sync", "every replica has offset %d, as the primary", off)
			return nil
		}
		if time.Now().After(deadline) {
			return refused("replicas not in step within half the pause: %s; writes resumed on %s: "+
				"look at INFO replication on them, or set replica-priority 0 on a replica that cannot keep up",
				strings.Join(lag, ", "), sw.old)
		}
		if err := wait(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("interrupted while replicas caught up: %w", err)
		}
	}
}

// failover asks the sentinel to promote a replica.
func (sw *switchover) failover(ctx context.Context) error {
	cctx, cancel := sw.cmdCtx(ctx)
	defer cancel()
	if err := sw.leader.Failover(cctx, sw.s.Master).Err(); err != nil {
		// NOGOODSLAVE, INPROG: the sentinel did nothing.
		return refused("sentinel %s: SENTINEL FAILOVER %s: %v", sw.leaderAddr, sw.s.Master, err)
	}
	sw.progress("failover", "sentinel %s is promoting a replica", sw.leaderAddr)
	return nil
}

// promoted waits until the sentinel names a new primary and that server
// says it is one.
func (sw *switchover) promoted(ctx context.Context, deadline time.Time) (string, error) {
	for {
		cctx, cancel := sw.cmdCtx(ctx)
		addr, err := sw.leader.GetMasterAddrByName(cctx, sw.s.Master).Result()
		if err == nil && len(addr) == 2 {
			if to := net.JoinHostPort(addr[0], addr[1]); to != sw.old {
				info, err := serverInfo(cctx, sw.direct(to))
				if err == nil && info["role"] == "master" {
					cancel()
					if !slices.Contains(sw.candidates, to) {
						sw.progress("promoted", "%s was not among the replicas checked", to)
					}
					sw.progress("promoted", "%s is primary (sentinel %s names it, it says role:master)", to, sw.leaderAddr)
					return to, nil
				}
			}
		}
		cancel()
		if time.Now().After(deadline) {
			return "", fmt.Errorf("sentinel %s has not named a new primary that answers role:master in time", sw.leaderAddr)
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// demote makes the old primary a replica of to (Sentinel would too, but
// later, and perhaps after writes resumed), and waits until to has a
// replica in step, so that min-replicas-to-write lets writes through
// when they resume.
func (sw *switchover) demote(ctx context.Context, to string, deadline time.Time) error {
	host, port, _ := net.SplitHostPort(to)
	cctx, cancel := sw.cmdCtx(ctx)
	err := sw.oldc.Do(cctx, "REPLICAOF", host, port).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("replicaof %s on %s: %w", to, sw.old, err)
	}
	newc := sw.direct(to)
	for {
		cctx, cancel := sw.cmdCtx(ctx)
		oi, oerr := serverInfo(cctx, sw.oldc)
		ni, nerr := serverInfo(cctx, newc)
		cancel()
		demoted := oerr == nil && oi["role"] == "slave" && net.JoinHostPort(oi["master_host"], oi["master_port"]) == to
		online := nerr == nil && slices.ContainsFunc(replicasOf(ni, 0), func(r Replica) bool { return r.State == "online" })
		if demoted && online {
			sw.progress("demote", "%s is a replica of %s; %s has a replica online", sw.old, to, to)
			return nil
		}
		if time.Now().After(deadline) {
			if demoted {
				// Writes let go now meet READONLY on the old primary,
				// and NOREPLICAS on the new one until a replica is
				// online: both are refusals a client tries again.
				sw.progress("demote", "%s is a replica of %s; %s has no replica online yet", sw.old, to, to)
				return nil
			}
			return fmt.Errorf("%s does not say it is a replica of %s in time", sw.old, to)
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// agree waits until every sentinel of the URL names to.
func (sw *switchover) agree(ctx context.Context, to string) error {
	deadline := time.Now().Add(sw.opt.Settle)
	for said := false; ; {
		var stale []string
		for _, v := range sw.s.views(ctx, sw.timeout) {
			if v.Primary != to {
				stale = append(stale, v.Addr)
			}
		}
		if len(stale) == 0 {
			sw.progress("agree", "every sentinel names %s", to)
			return nil
		}
		if !said {
			sw.progress("agree", "waiting until sentinels %s name %s (at most %v)", strings.Join(stale, ", "), to, sw.opt.Settle)
			said = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the switch-over to %s is done, but after %v sentinels %s do not name it yet: look at their logs",
				to, sw.opt.Settle, strings.Join(stale, ", "))
		}
		if err := wait(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// wait sleeps d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
