// Command listd delivers the messages of the shared mail queue to the
// mailing-list software on the lists host: over LMTP, SMTP, through a
// program, or into a Maildir, chosen per recipient by the [[route]]
// tables of its configuration. It delivers every message at least once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	"mxq/cmd/internal/buildinfo"
	"mxq/cmd/internal/daemon"
	"mxq/lists"
	"mxq/queue"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "listd:", err)
		}
		os.Exit(2)
	}
}

const usage = `Usage: listd -config FILE [-check-config] | -version

listd takes messages off the queue that the MX hosts (mxd) fill and hands
each recipient to the destination of the first [[route]] it matches: an LMTP
server (lists.sr.ht, Mailman, Dovecot), an SMTP relay, a program such as
mlmmj-receive (no shell), or a Maildir. Every message is delivered at least
once: a temporary failure (4xx, exit 75, timeout) is retried with back-off, a
permanent one (5xx, other exit codes, no route) goes to the dead-letter
stream, where "mxq dead" shows it and can retry it. Recipients already
delivered are never delivered again by a retry.

listd announces in Redis the record formats it reads, and the MX hosts write
only those; an entry in a newer format (an MX host upgraded while an older
listd started) is left in the queue for a listd that reads it, never
dead-lettered. -version prints the formats.

On start and on SIGHUP, listd publishes its route patterns to the recipient
registry, so that every MX accepts mail for them at RCPT.

Signals: SIGHUP reloads the [[route]] tables (other settings need a restart);
a broken file is reported and the running routes are kept. SIGTERM or SIGINT
stops fetching, lets deliveries in flight finish within shutdown_timeout, and
hands the rest back to other consumers.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags, err := daemon.ParseFlags("listd", usage, args, stderr)
	if err != nil {
		return err
	}
	if flags.Version {
		fmt.Fprintln(stdout, "listd", buildinfo.Version())
		fmt.Fprintf(stdout, "record formats: reads %s; writes none (a newer format is left for a listd that reads it)\n", queue.FormatList(queue.Formats()))
		return nil
	}
	cfg, err := loadConfig(flags.Config)
	if err != nil {
		return err
	}
	if flags.CheckConfig {
		fmt.Fprintf(stdout, "%s: ok, %d routes, %d deliveries at once\n", flags.Config, len(cfg.Routes), cfg.Concurrency)
		for i, r := range cfg.routes(nil).Routes {
			limit := "no limit of its own"
			if n := cfg.Routes[i].maxParallel(); n > 0 {
				limit = fmt.Sprintf("at most %d at once", n)
			}
			fmt.Fprintf(stdout, "  %s → %s%s (%s)\n", r.Match, r.To, cfg.Routes[i].envNote(), limit)
		}
		return nil
	}
	logger := daemon.NewLogger(stderr, cfg.LogLevel)
	queue.LogTo(logger)
	return serve(ctx, flags.Config, cfg, logger)
}

func serve(ctx context.Context, path string, cfg *config, logger *slog.Logger) error {
	q, err := queue.Open(cfg.Redis, cfg.Queue)
	if err != nil {
		return err
	}
	defer q.Close()

	reg := daemon.NewRegistry()
	m := lists.NewMetrics(reg)
	reg.MustRegister(&backlogCollector{q: q})
	errc := make(chan error, 1)
	if cfg.MetricsListen != "" {
		metrics, err := daemon.ListenMetrics(cfg.MetricsListen, reg, func(ctx context.Context) error {
			// The same fixed words as mxd's: Redis's own error text (its
			// address, its reason) goes to whoever can scrape it otherwise.
			if q.Ping(ctx) != nil {
				return errors.New("queue unreachable")
			}
			return nil
		})
		if err != nil {
			return err
		}
		defer metrics.Close()
		go metrics.Serve(errc)
		logger.Info("serving metrics", "addr", metrics.Addr())
	}

	running := cfg.routes(nil)
	var router atomic.Pointer[lists.Router]
	router.Store(running.Router)
	copt := cfg.Consumer
	copt.Program = "listd " + buildinfo.Version()
	src := q.Consumer(copt)
	watchConsumer(reg, src)
	consumer := cfg.consumer(src, &router, logger, m.Observe)

	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	pub := &publisher{q: q, log: logger, want: make(chan []string, 1)}
	go pub.run(bg)
	pub.set(router.Load().Patterns())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- consumer.Run(runCtx) }()
	logger.Info("started", "version", buildinfo.Version(), "consumer", src.Name(), "group", cfg.Consumer.Group,
		"routes", len(cfg.Routes), "concurrency", cfg.Concurrency, "lease", cfg.Consumer.Lease)

	for {
		select {
		case <-ctx.Done():
			logger.Info("stopping: finishing deliveries in flight", "grace", cfg.ShutdownTimeout)
			<-runDone
			logger.Info("stopped")
			return nil
		case err := <-errc:
			stopRun()
			<-runDone
			return err
		case err := <-runDone:
			return err
		case <-hup:
			running = reload(path, cfg, running, &router, pub, logger)
		}
	}
}

// reload reads the file at path again and, when it is good, puts its
// routes in place and publishes them, and returns the routes now
// running; cfg is the running configuration, running its routes.
func reload(path string, cfg *config, running *routes, router *atomic.Pointer[lists.Router], pub *publisher, logger *slog.Logger) *routes {
	next, err := loadConfig(path)
	if err != nil {
		logger.Error("reload: keeping the running routes", "err", err)
		return running
	}
	rs := next.routes(running)
	router.Store(rs.Router)
	pub.set(rs.Patterns())
	logger.Info("reloaded routes", "routes", len(next.Routes))
	if !sameExceptRoutes(cfg, next) {
		logger.Warn("reload: settings other than [[route]] changed; they take effect at the next start")
	}
	return rs
}

// consumer builds the consumer; its handler is whatever router holds at
// the time of each delivery, so that a reload applies to the next one.
func (c *config) consumer(src lists.Source, router *atomic.Pointer[lists.Router], logger *slog.Logger, observe func(lists.Result)) *lists.Consumer {
	lc := lists.NewConsumer(src, lists.HandlerFunc(func(ctx context.Context, msg *lists.Message) error {
		return router.Load().Deliver(ctx, msg)
	}))
	lc.Concurrency, lc.Timeout, lc.Grace = c.Concurrency, c.DeliveryTimeout, c.ShutdownTimeout
	lc.Logger, lc.Observe = logger, observe
	return lc
}

func sameExceptRoutes(a, b *config) bool {
	x, y := *a, *b
	x.Routes, y.Routes = nil, nil
	return reflect.DeepEqual(x, y)
}

// publisher publishes route patterns to the recipient registry, and keeps
// trying while Redis is away: the latest set wins.
type publisher struct {
	q    *queue.Queue
	log  *slog.Logger
	want chan []string
}

// set asks for patterns to be published, replacing a set not yet
// published.
func (p *publisher) set(patterns []string) {
	for {
		select {
		case p.want <- patterns:
			return
		default:
			select {
			case <-p.want:
			default:
			}
		}
	}
}

func (p *publisher) run(ctx context.Context) {
	var pending []string
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case pending = <-p.want:
		case <-retry:
		}
		if pending == nil {
			continue
		}
		if err := p.q.PublishRoutes(ctx, pending); err != nil {
			p.log.Error("publish routes to the recipient registry; trying again in 5s", "err", err)
			retry = time.After(5 * time.Second)
			continue
		}
		p.log.Info("published routes to the recipient registry", "patterns", len(pending))
		pending, retry = nil, nil
	}
}
