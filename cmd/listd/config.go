package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"mxq/cmd/internal/tomlfile"
	"mxq/lists"
	"mxq/queue"
)

// config is listd's TOML file. Every key is documented in
// docs/examples/listd.toml.
type config struct {
	Redis         string `toml:"redis"`
	Queue         string `toml:"queue"`
	Group         string `toml:"group"`
	Consumer      string `toml:"consumer"`
	Hostname      string `toml:"hostname"`
	MetricsListen string `toml:"metrics_listen"`
	LogLevel      string `toml:"log_level"`

	Concurrency     int               `toml:"concurrency"`
	Lease           tomlfile.Duration `toml:"lease"`
	MaxAttempts     int               `toml:"max_attempts"`
	RetryMin        tomlfile.Duration `toml:"retry_min"`
	RetryMax        tomlfile.Duration `toml:"retry_max"`
	DeliveryTimeout tomlfile.Duration `toml:"delivery_timeout"`
	ShutdownTimeout tomlfile.Duration `toml:"shutdown_timeout"`

	// Replicas and ReplicaTimeout are queue.Options's; zero is the
	// queue's default.
	Replicas       int               `toml:"replicas"`
	ReplicaTimeout tomlfile.Duration `toml:"replica_timeout"`

	Routes []route `toml:"route"`
}

// route is one [[route]] table: match and exactly one destination.
type route struct {
	Match   string            `toml:"match"`
	LMTP    string            `toml:"lmtp"`
	SMTP    string            `toml:"smtp"`
	Exec    []string          `toml:"exec"`
	Maildir string            `toml:"maildir"`
	Timeout tomlfile.Duration `toml:"timeout"`
	// MaxParallel bounds this route's deliveries at once, below
	// concurrency. Unset: defaultMaxParallel for lmtp, smtp and exec,
	// no bound of its own for a Maildir.
	MaxParallel *int `toml:"max_parallel"`
}

// defaultMaxParallel is how many LMTP or SMTP sessions, or programs, one
// route runs at once unless max_parallel says otherwise: list software is
// not built for listd's full concurrency, a Maildir is.
const defaultMaxParallel = 8

// maxParallel is the route's bound, 0 for none.
func (r *route) maxParallel() int {
	switch {
	case r.MaxParallel != nil:
		return *r.MaxParallel
	case r.Maildir != "":
		return 0
	default:
		return defaultMaxParallel
	}
}

// loadConfig reads and checks the file at path. Errors name the file,
// the line where they can, and what to do.
func loadConfig(path string) (*config, error) {
	c := &config{
		Redis:           "redis://127.0.0.1:6379/0",
		Queue:           "mxq",
		Group:           "listd",
		LogLevel:        "info",
		Concurrency:     128,
		Lease:           tomlfile.Duration{Duration: time.Minute},
		MaxAttempts:     30,
		RetryMin:        tomlfile.Duration{Duration: 30 * time.Second},
		RetryMax:        tomlfile.Duration{Duration: 30 * time.Minute},
		DeliveryTimeout: tomlfile.Duration{Duration: 10 * time.Minute},
		ShutdownTimeout: tomlfile.Duration{Duration: 30 * time.Second},
	}
	src, err := tomlfile.Decode(path, c, "docs/examples/listd.toml")
	if err != nil {
		return nil, err
	}
	if err := c.check(src); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// routeLines returns the line of each [[route]] header, for messages.
func routeLines(src []byte) []int {
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "[[route]]" {
			out = append(out, n)
		}
	}
	return out
}

func (c *config) check(src []byte) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if q, err := queue.Open(c.Redis, queue.Options{}); err != nil {
		add("redis: %v", err)
	} else {
		q.Close()
	}
	if c.Concurrency < 1 {
		add("concurrency %d: want at least 1", c.Concurrency)
	}
	if c.MaxAttempts < 1 {
		add("max_attempts %d: want at least 1", c.MaxAttempts)
	}
	if c.Replicas < 0 {
		add("replicas %d: want 0 (no waiting) or more", c.Replicas)
	}
	if c.ReplicaTimeout.Duration < 0 {
		add("replica_timeout: want a positive duration")
	}
	for name, d := range map[string]tomlfile.Duration{"lease": c.Lease, "retry_min": c.RetryMin, "retry_max": c.RetryMax,
		"delivery_timeout": c.DeliveryTimeout, "shutdown_timeout": c.ShutdownTimeout} {
		if d.Duration <= 0 {
			add("%s: want a positive duration", name)
		}
	}
	if c.RetryMax.Duration < c.RetryMin.Duration {
		add("retry_max %v is less than retry_min %v", c.RetryMax.Duration, c.RetryMin.Duration)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if len(c.Routes) == 0 {
		add(`no [[route]]: listd needs at least one, e.g. [[route]] match = "~*/*@lists.example.org" lmtp = "unix:/run/lists/lmtp.sock"`)
	}
	lines := routeLines(src)
	for i, r := range c.Routes {
		where := fmt.Sprintf("route %d", i+1)
		if i < len(lines) {
			where = fmt.Sprintf("line %d: route %d", lines[i], i+1)
		}
		if err := r.check(); err != nil {
			add("%s: %v", where, err)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func (r *route) check() error {
	if r.Match == "" {
		return errors.New(`match is required: an address or pattern such as "~*/*@lists.example.org"`)
	}
	if r.MaxParallel != nil && *r.MaxParallel < 1 {
		return fmt.Errorf("match %q: max_parallel %d: want at least 1 (leave it out for the default)", r.Match, *r.MaxParallel)
	}
	if _, err := queue.NormalizePattern(r.Match); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{r.LMTP != "", r.SMTP != "", len(r.Exec) > 0, r.Maildir != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("match %q: want exactly one of lmtp, smtp, exec, maildir (found %d)", r.Match, n)
	}
	switch {
	case r.LMTP != "":
		if p, ok := strings.CutPrefix(r.LMTP, "unix:"); ok && !filepath.IsAbs(p) {
			return fmt.Errorf("lmtp %q: a unix socket needs an absolute path", r.LMTP)
		} else if !ok && !strings.Contains(r.LMTP, ":") {
			return fmt.Errorf(`lmtp %q: want "unix:/path" or "host:port"`, r.LMTP)
		}
	case r.SMTP != "":
		if !strings.Contains(r.SMTP, ":") {
			return fmt.Errorf(`smtp %q: want "host:port"`, r.SMTP)
		}
	case len(r.Exec) > 0:
		if !filepath.IsAbs(r.Exec[0]) {
			return fmt.Errorf("exec %q: the program needs an absolute path (no shell, no PATH lookup)", r.Exec[0])
		}
		st, err := os.Stat(r.Exec[0])
		if err != nil {
			return fmt.Errorf("exec: %w", err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("exec %q: not an executable file", r.Exec[0])
		}
	case r.Maildir != "":
		if !filepath.IsAbs(r.Maildir) {
			return fmt.Errorf("maildir %q: want an absolute path", r.Maildir)
		}
	}
	return nil
}

// routes are a Router and the Limiter of each of its routes.
type routes struct {
	*lists.Router
	conf   []route
	limits []*lists.Limiter
}

// routes builds the Router of c's routes. A route found unchanged in prev
// (the running routes, nil at start) keeps prev's Limiter: deliveries
// still running on the old route hold its slots, and a new Limiter would
// let max_parallel more run beside them.
func (c *config) routes(prev *routes) *routes {
	rs := &routes{Router: &lists.Router{}, conf: c.Routes}
	name := c.Hostname
	if name == "" {
		name, _ = os.Hostname()
	}
	var taken []bool
	if prev != nil {
		taken = make([]bool, len(prev.conf))
	}
	for _, r := range c.Routes {
		var d lists.Destination
		switch {
		case r.LMTP != "":
			d = &lists.LMTP{Addr: r.LMTP, LocalName: name, Timeout: r.Timeout.Duration}
		case r.SMTP != "":
			d = &lists.SMTP{Addr: r.SMTP, LocalName: name, Timeout: r.Timeout.Duration}
		case len(r.Exec) > 0:
			d = &lists.Exec{Argv: r.Exec, Timeout: r.Timeout.Duration}
		default:
			d = &lists.Maildir{Dir: r.Maildir}
		}
		l := prev.carry(r, taken)
		if l == nil {
			l = lists.NewLimiter(r.maxParallel())
		}
		rs.limits = append(rs.limits, l)
		rs.Routes = append(rs.Routes, lists.Route{Match: r.Match, To: l.Limit(d)})
	}
	return rs
}

// carry returns the Limiter of the first route of rs equal to r and not
// taken yet, and takes it; nil when there is none.
func (rs *routes) carry(r route, taken []bool) *lists.Limiter {
	if rs == nil {
		return nil
	}
	for i, old := range rs.conf {
		if !taken[i] && rs.limits[i] != nil && reflect.DeepEqual(old, r) {
			taken[i] = true
			return rs.limits[i]
		}
	}
	return nil
}

// queueOptions are the queue's settings.
func (c *config) queueOptions() queue.Options {
	return queue.Options{Name: c.Queue, Replicas: c.Replicas, ReplicaTimeout: c.ReplicaTimeout.Duration}
}

// consumerOptions are the queue consumer's settings.
func (c *config) consumerOptions() queue.ConsumerOptions {
	return queue.ConsumerOptions{
		Group: c.Group, Name: c.Consumer, Lease: c.Lease.Duration, MaxAttempts: c.MaxAttempts,
		RetryMin: c.RetryMin.Duration, RetryMax: c.RetryMax.Duration,
	}
}
