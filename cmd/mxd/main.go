// Command mxd is the SMTP receiver of an MX host for mailing lists: it
// accepts mail for the configured list domains and answers 250 only once
// the message is durable in the shared Redis queue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"mxq/cmd/internal/buildinfo"
	"mxq/cmd/internal/daemon"
	"mxq/queue"
	"mxq/smtpd"
	"mxq/smtpd/msgauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mxd:", err)
		}
		os.Exit(2)
	}
}

const usage = `Usage: mxd -config FILE [-check-config] | -version

mxd receives mail for mailing lists on an MX host. It keeps no spool: each
message is checked (recipient at RCPT, line endings, size, loops), stamped
with a Received header, and put into the shared Redis queue; the client gets
"250 2.0.0 queued as ID" only after Redis has it durably. Any queue trouble
is answered 4xx, so senders retry. Run the same config on every MX host,
changing only hostname.

Each message is written in the newest record format that every live
consumer (listd) reads, so that mxd and listd may be upgraded in either
order; -version prints the formats, "mxq format" shows the choice.

Signals: SIGTERM or SIGINT stops accepting, lets transactions in flight finish
(shutdown_timeout), and exits. SIGHUP reloads the TLS certificate and key:
sessions from then on get the new one, sessions in TLS keep theirs. The drain flag in Redis (set by dnsctl drain)
makes new connections get 421 4.3.2.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags, err := daemon.ParseFlags("mxd", usage, args, stderr)
	if err != nil {
		return err
	}
	if flags.Version {
		printVersion(stdout)
		return nil
	}
	cfg, err := loadConfig(flags.Config)
	if err != nil {
		return err
	}
	cfg.SMTP.Version = buildinfo.Version()
	if flags.CheckConfig {
		return checkCerts(cfg, flags.Config, stdout)
	}
	logger := daemon.NewLogger(stderr, cfg.LogLevel).With("host", cfg.SMTP.Hostname)
	queue.LogTo(logger)
	return serve(ctx, cfg, logger)
}

func serve(ctx context.Context, cfg *config, logger *slog.Logger) error {
	q, err := queue.Open(cfg.Redis, cfg.Queue)
	if err != nil {
		return err
	}
	defer q.Close()
	deps, certs, err := receiverDeps(cfg, q)
	if err != nil {
		return err
	}
	reg := daemon.NewRegistry()
	reg.MustRegister(formatCollector{q})
	if certs != nil {
		reg.MustRegister(smtpd.CertCollector(certs))
	}
	// The record format is chosen before the first message, and again
	// with every heartbeat; until a choice is made (Redis unreachable),
	// mxd writes the oldest format, which every consumer reads.
	formats := q.FormatChooser(queue.FormatOptions{Interval: cfg.HeartbeatInterval, ReaderIdle: cfg.ReaderIdle, Logger: logger})
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	formats.Refresh(fctx)
	cancel()
	deps.Logger, deps.Metrics = logger, smtpd.NewMetrics(reg)
	srv, err := smtpd.New(cfg.SMTP, deps)
	if err != nil {
		return err
	}
	hb := &smtpd.Heartbeat{Server: srv, Beater: q, Interval: cfg.HeartbeatInterval}
	listeners, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	errc := make(chan error, len(listeners)+1)
	if cfg.MetricsListen != "" {
		metrics, err := daemon.ListenMetrics(cfg.MetricsListen, reg, func(context.Context) error { return hb.Health() })
		if err != nil {
			closeAll(listeners)
			return err
		}
		defer metrics.Close()
		go metrics.Serve(errc)
		logger.Info("serving metrics", "addr", metrics.Addr())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hbCtx, stopBeat := context.WithCancel(context.Background())
	defer stopBeat()
	go hb.Run(hbCtx)
	go formats.Run(hbCtx)
	if certs != nil {
		go certs.RunTicketRotation(hbCtx, cfg.TLSTicketRotation)
	}

	for _, l := range listeners {
		logger.Info("listening", "addr", l.Addr().String(), "version", buildinfo.Version())
		go func() { errc <- srv.Serve(l) }()
	}

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			reload(certs, logger)
		case err := <-errc:
			srv.Close()
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.SMTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown deadline passed; remaining sessions were cut", "err", err)
	}
	logger.Info("stopped")
	return nil
}

// receiverDeps builds the live objects of the receiver: its queue and
// recipient cache over q, TLS, the authentication checker.
func receiverDeps(cfg *config, q *queue.Queue) (smtpd.Deps, *smtpd.CertStore, error) {
	d := smtpd.Deps{Queue: smtpd.QueueOf(q), Recipients: smtpd.NewRecipients(q, cfg.RegistryTTL)}
	var certs *smtpd.CertStore
	if files := cfg.certFiles(); len(files) > 0 {
		var err error
		if certs, err = smtpd.NewCertStore(files...); err != nil {
			return d, nil, err
		}
		d.TLS = certs.TLSConfig()
	}
	ac := cfg.Auth
	var err error
	if ac.Resolver, err = msgauth.NewResolver(cfg.DNSResolver, cfg.DNSTimeout); err != nil {
		return d, nil, fmt.Errorf("dns_resolver: %w", err)
	}
	checker, err := msgauth.New(ac)
	if err != nil {
		return d, nil, err
	}
	d.Auth = checker
	return d, certs, nil
}

// checkCerts loads the TLS certificates (-check-config) and prints, for
// each, the TLSA 3 1 1 record that matches it (docs/dnsctl.md, DANE).
func checkCerts(cfg *config, file string, stdout io.Writer) error {
	if files := cfg.certFiles(); len(files) > 0 {
		certs, err := smtpd.NewCertStore(files...)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, c := range certs.Served() {
			fmt.Fprintf(stdout, "tls certificate %s: %s key, spki_sha256 %s, expires %s; TLSA: 3 1 1 %s\n",
				c.File, c.KeyType, c.SPKISHA256, c.NotAfter.UTC().Format(time.RFC3339), c.SPKISHA256)
		}
	}
	fmt.Fprintf(stdout, "%s: ok\n", file)
	return nil
}

// listen opens every address, or none.
func listen(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(ls)
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// reload reads the TLS certificates again (SIGHUP): sessions from now on
// get the new ones; session tickets issued before still resume.
func reload(certs *smtpd.CertStore, logger *slog.Logger) {
	if certs == nil {
		return
	}
	if err := certs.Reload(); err != nil {
		logger.Error("reload tls certificate; keeping the previous one", "err", err)
		return
	}
	logger.Info("reloaded tls certificate")
}
