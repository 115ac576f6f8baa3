// Package daemon is what mxq's two daemons, mxd and listd, share around
// their own wiring: the command line (-config, -check-config, -version;
// every other setting is in the file), the logger of the log_level
// setting, and the HTTP server of /metrics and /healthz; and the version
// every command of cmd/ prints and announces.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Flags are a daemon's command line.
type Flags struct {
	Config      string // the TOML file
	CheckConfig bool   // check the file and exit
	Version     bool   // print the version and exit
}

// ParseFlags reads args for the daemon name ("mxd"): -config (default
// /etc/mxq/NAME.toml), -check-config and -version. -h prints usage, then
// the flags, and returns flag.ErrHelp. Arguments other than flags are an
// error.
func ParseFlags(name, usage string, args []string, stderr io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&f.Config, "config", "/etc/mxq/"+name+".toml", "the TOML configuration `file` (see docs/examples/"+name+".toml)")
	fs.BoolVar(&f.CheckConfig, "check-config", false, "check the configuration and exit")
	fs.BoolVar(&f.Version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// NewLogger returns a logger of key=value lines on w, at level: the
// log_level setting, which slog.Level reads from the file (debug, info,
// warn or error).
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRegistry returns a Prometheus registry holding the Go runtime's and
// the process's collectors, for the daemon to add its own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Metrics is the HTTP server of /metrics and /healthz.
type Metrics struct {
	srv *http.Server
	l   net.Listener
}

// ListenMetrics listens on addr (the metrics_listen setting) for /metrics,
// gathered from reg, and /healthz, which answers "ok", or 503 with the
// text of health's error. That text is what anyone who can reach the port
// reads: health returns fixed words, never a dependency's own error (an
// address, a reason).
func ListenMetrics(addr string, reg prometheus.Gatherer, health func(context.Context) error) (*Metrics, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := health(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return &Metrics{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, l: l}, nil
}

// Addr is the address listened on.
func (m *Metrics) Addr() string { return m.l.Addr().String() }

// Serve serves until Close. A failure other than Close goes to errc.
func (m *Metrics) Serve(errc chan<- error) {
	if err := m.srv.Serve(m.l); !errors.Is(err, http.ErrServerClosed) {
		errc <- fmt.Errorf("metrics_listen %s: %w", m.Addr(), err)
	}
}

// Close stops serving at once.
func (m *Metrics) Close() error { return m.srv.Close() }
