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

	"mxq/cmd/internal/daemon"
	"mxq/cmd/internal/tomlfile"
	"mxq/lists"
	"mxq/queue"
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
	LogLevel      daemon.Level

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

// loadConfig reads and checks the file at path. Errors name the file,
// the line where they can, and what to do.
func loadConfig(path string) (*config, error) {
	c := defaults()
	src, err := tomlfile.Decode(path, c.settings(), "docs/examples/listd.toml")
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
	if c.Consumer.MaxAttempts < 1 {
		add("max_attempts %d: want at least 1", c.Consumer.MaxAttempts)
	}
	if c.Queue.Replicas < 0 {
		add("replicas %d: want 0 (no waiting) or more", c.Queue.Replicas)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"lease", c.Consumer.Lease}, {"retry_min", c.Consumer.RetryMin}, {"retry_max", c.Consumer.RetryMax},
		{"delivery_timeout", c.DeliveryTimeout}, {"shutdown_timeout", c.ShutdownTimeout},
		{"replica_timeout", c.Queue.ReplicaTimeout}} {
		if d.v <= 0 {
			add("%s: want a positive duration", d.name)
		}
	}
	if c.Consumer.RetryMax < c.Consumer.RetryMin {
		add("retry_max %v is less than retry_min %v", c.Consumer.RetryMax, c.Consumer.RetryMin)
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
			d = &lists.LMTP{Addr: r.LMTP, LocalName: name, Timeout: time.Duration(r.Timeout)}
		case r.SMTP != "":
			d = &lists.SMTP{Addr: r.SMTP, LocalName: name, Timeout: time.Duration(r.Timeout)}
		case len(r.Exec) > 0:
			d = &lists.Exec{Argv: r.Exec, Timeout: time.Duration(r.Timeout)}
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
