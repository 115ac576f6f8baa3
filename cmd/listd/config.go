package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"mxq/address"
	"mxq/cmd/internal/tomlfile"
	"mxq/lists"
	"mxq/queue"
	"mxq/setting"
)

// config is listd's settings: the configurations of the packages it
// wires, starting from their defaults, and what only the command uses.
// settings binds the keys of the TOML file (docs/examples/listd.toml) to
// them.
type config struct {
	Redis    string
	Queue    queue.Options
	Consumer queue.ConsumerOptions

	Hostname      string
	MetricsListen string
	LogLevel      slog.Level

	Concurrency     int
	DeliveryTimeout time.Duration
	ShutdownTimeout time.Duration

	Routes []route
}

// defaults are the packages' defaults; listd adds none of its own.
func defaults() *config {
	return &config{
		Redis:           queue.DefaultURL,
		Queue:           queue.DefaultOptions(),
		Consumer:        queue.DefaultConsumerOptions(),
		Concurrency:     lists.DefaultConcurrency,
		DeliveryTimeout: lists.DefaultTimeout,
		ShutdownTimeout: lists.DefaultGrace,
	}
}

// settings binds each key of listd.toml to what it sets.
func (c *config) settings() []tomlfile.Setting {
	return []tomlfile.Setting{
		{Key: "redis", To: &c.Redis},
		{Key: "queue", To: &c.Queue.Name},
		{Key: "group", To: &c.Consumer.Group},
		{Key: "consumer", To: &c.Consumer.Name},
		{Key: "hostname", To: &c.Hostname},
		{Key: "metrics_listen", To: &c.MetricsListen},
		{Key: "log_level", To: &c.LogLevel},

		{Key: "concurrency", To: &c.Concurrency},
		{Key: "lease", To: &c.Consumer.Lease},
		{Key: "max_attempts", To: &c.Consumer.MaxAttempts},
		{Key: "retry_min", To: &c.Consumer.RetryMin},
		{Key: "retry_max", To: &c.Consumer.RetryMax},
		{Key: "delivery_timeout", To: &c.DeliveryTimeout},
		{Key: "shutdown_timeout", To: &c.ShutdownTimeout},
		{Key: "replicas", To: &c.Queue.Replicas},
		{Key: "replica_timeout", To: &c.Queue.ReplicaTimeout},

		{Key: "route", To: &c.Routes},
	}
}

// route is one [[route]] table: match and exactly one destination.
type route struct {
	Match   string            `toml:"match"`
	LMTP    string            `toml:"lmtp"`
	SMTP    string            `toml:"smtp"`
	Exec    []string          `toml:"exec"`
	Maildir string            `toml:"maildir"`
	Timeout tomlfile.Duration `toml:"timeout"`
	// Env is more of an exec route's environment (lists.Exec.Env).
	Env []string `toml:"env"`
	// MaxParallel bounds this route's deliveries at once, below
	// concurrency. Unset: lists.DefaultMaxParallel for lmtp, smtp and
	// exec, no bound of its own for a Maildir.
	MaxParallel *int `toml:"max_parallel"`
}

// maxParallel is the route's bound, 0 for none.
func (r *route) maxParallel() int {
	switch {
	case r.MaxParallel != nil:
		return *r.MaxParallel
	case r.Maildir != "":
		return 0
	default:
		return lists.DefaultMaxParallel
	}
}

// loadConfig reads the file at path over the defaults and checks the
// result once, with the queue's own checks: what it returns, the
// packages take as it is. Errors name the file, the key and its line,
// and what to do.
func loadConfig(path string) (*config, error) {
	c := defaults()
	f, err := tomlfile.Decode(path, c.settings(), "docs/examples/listd.toml")
	if err != nil {
		return nil, err
	}
	routes := c.checkRoutes(f.Src)
	if routes != nil {
		routes = fmt.Errorf("%s: %w", path, routes)
	}
	if err := errors.Join(f.Explain(c.checkSettings()), routes); err != nil {
		return nil, err
	}
	return c, nil
}

// checkSettings reports the settings other than [[route]] that listd
// and the queue cannot use.
func (c *config) checkSettings() error {
	ck := setting.For(c)
	if q, err := queue.Open(c.Redis, queue.DefaultOptions()); err != nil {
		ck.Add(&c.Redis, err.Error())
	} else {
		q.Close()
	}
	setting.Positive(ck, &c.Concurrency)
	setting.Positive(ck, &c.DeliveryTimeout)
	setting.Positive(ck, &c.ShutdownTimeout)
	return errors.Join(ck.Err(), c.Queue.Check(), c.Consumer.Check())
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

// checkRoutes reports the [[route]] tables that listd cannot use; src is
// the file's text, for the lines.
func (c *config) checkRoutes(src []byte) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
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
		if err := r.checkEnv(); err != nil {
			if i < len(lines) {
				if n := keyLineIn(src, "env", lines[i], lines[i+1:]); n > 0 {
					where = fmt.Sprintf("line %d: route %d", n, i+1)
				}
			}
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
	if _, err := address.NormalizePattern(r.Match); err != nil {
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

// checkEnv checks the route's env.
func (r *route) checkEnv() error {
	if len(r.Env) == 0 {
		return nil
	}
	if len(r.Exec) == 0 {
		return fmt.Errorf("match %q: env is for exec routes only: remove it", r.Match)
	}
	if err := lists.CheckEnv(r.Env); err != nil {
		return fmt.Errorf("env: %w", err)
	}
	return nil
}

// envNote names the variables the route's env sets, for -check-config:
// " with PI_CONFIG, HOME", or "". The values are not shown: one may be a
// secret.
func (r *route) envNote() string {
	if len(r.Env) == 0 {
		return ""
	}
	var names []string
	for _, kv := range r.Env {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	return " with " + strings.Join(names, ", ")
}

// keyLineIn returns the line of the first "key =" of the table whose
// header is on line from and that ends before the next header in next
// (the lines of the following tables, if any); 0 if none.
func keyLineIn(src []byte, key string, from int, next []int) int {
	to := -1
	if len(next) > 0 {
		to = next[0]
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan() && n != to; n++ {
		if n <= from {
			continue
		}
		k, _, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"`) == key {
			return n
		}
	}
	return 0
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
			d = &lists.LMTP{Addr: r.LMTP, LocalName: name, Timeout: time.Duration(r.Timeout)}
		case r.SMTP != "":
			d = &lists.SMTP{Addr: r.SMTP, LocalName: name, Timeout: time.Duration(r.Timeout)}
		case len(r.Exec) > 0:
			d = &lists.Exec{Argv: r.Exec, Timeout: time.Duration(r.Timeout), Env: r.Env}
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
