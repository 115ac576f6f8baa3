package main

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"

	"mxq/cmd/internal/tomlfile"
	"mxq/dnsctl"
	"mxq/queue"
)

// config is dnsctl's settings: the Maintenance it runs, starting from
// dnsctl's defaults, and what only the command uses. settings binds the
// keys of the TOML file (docs/examples/dnsctl.toml) and the flags to them;
// flags override the file.
type config struct {
	Maint dnsctl.Maintenance
	Queue queue.Options

	Zone          string
	Server        string
	Key           string
	Authoritative []string
	NS            bool
	Redis         string
	QueryTimeout  time.Duration
}

// defaults are the packages' defaults, and dnsctl's own: where the state
// is kept, and that the NS names' addresses are checked.
func defaults() *config {
	m := dnsctl.Defaults()
	m.StateFile = "/var/lib/dnsctl/state.json"
	return &config{
		Maint:        m,
		Queue:        queue.DefaultOptions(),
		NS:           true,
		Redis:        queue.DefaultURL,
		QueryTimeout: dnsctl.DefaultQueryTimeout,
	}
}

// setting is one key of dnsctl.toml, the flag that overrides it, and what
// both set.
type setting struct {
	key, flag, usage string
	to               any
}

func (c *config) settings() []setting {
	return []setting{
		{"zone", "zone", "the `zone` whose apex MX RRset is managed, e.g. example.org", &c.Zone},
		{"server", "server", "primary `host:port` that takes UPDATEs (default: the SOA MNAME, port 53)", &c.Server},
		{"key", "key", "TSIG key `file` as written by tsig-keygen (hmac-sha256, hmac-sha512 or hmac-sha1)", &c.Key},
		{"authoritative", "authoritative", "extra authoritative `host:port` to check (repeatable)", &c.Authoritative},
		{"ns", "ns", "also check every address of the zone's NS names, port 53", &c.NS},
		{"redis", "redis", "Redis `url` of the shared queue", &c.Redis},
		{"queue", "queue", "queue `name` (the Redis hash tag)", &c.Queue.Name},
		{"min_remaining", "min-remaining", "MX records that must remain after a removal (`count`, at least 1)", &c.Maint.MinRemaining},
		{"smtp_port", "smtp-port", "SMTP `port` probed on MX hosts", &c.Maint.SMTPPort},
		{"state_file", "state", "local state `file` (written with fsync and rename)", &c.Maint.StateFile},
		{"margin", "margin", "wait this `duration` beyond the old TTL", &c.Maint.Margin},
		{"propagation_timeout", "propagation-timeout", "give up when authoritative servers lag this `duration`", &c.Maint.Propagation},
		{"idle_timeout", "idle-timeout", "give up when the host is not idle after this `duration`", &c.Maint.IdleTimeout},
		{"heartbeat_max_age", "heartbeat-max-age", "a heartbeat older than this `duration` is not fresh", &c.Maint.HeartbeatMaxAge},
		{"query_timeout", "query-timeout", "bound of one DNS exchange (`duration`)", &c.QueryTimeout},
	}
}

// fileSettings are the keys of the file.
func (c *config) fileSettings() []tomlfile.Setting {
	var out []tomlfile.Setting
	for _, s := range c.settings() {
		out = append(out, tomlfile.Setting{Key: s.key, To: s.to})
	}
	return out
}

// list is a repeatable string flag.
type list struct{ v *[]string }

func (l list) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l list) Set(s string) error { *l.v = append(*l.v, s); return nil }

// flags binds -config and a flag for every setting to fs; resolve, after
// fs.Parse, reads the file and applies the flags that were set.
type flags struct {
	fs   *flag.FlagSet
	set  *config // what the flags set, over the defaults
	file string
}

func newFlags(fs *flag.FlagSet) *flags {
	f := &flags{fs: fs, set: defaults()}
	fs.StringVar(&f.file, "config", "", "read settings from this TOML `file` (flags override it)")
	for _, s := range f.set.settings() {
		switch v := s.to.(type) {
		case *string:
			fs.StringVar(v, s.flag, *v, s.usage)
		case *bool:
			fs.BoolVar(v, s.flag, *v, s.usage)
		case *int:
			fs.IntVar(v, s.flag, *v, s.usage)
		case *time.Duration:
			fs.DurationVar(v, s.flag, *v, s.usage)
		case *[]string:
			fs.Var(list{v}, s.flag, s.usage)
		default:
			panic(fmt.Sprintf("setting %s: no flag for %T", s.key, s.to))
		}
	}
	return f
}

// resolve returns the file's settings overridden by the flags that were
// set, and checks them.
func (f *flags) resolve() (*config, error) {
	c := defaults()
	if f.file != "" {
		if _, err := tomlfile.Decode(f.file, c.fileSettings(), "docs/examples/dnsctl.toml"); err != nil {
			return c, err
		}
	}
	to, from := c.settings(), f.set.settings()
	f.fs.Visit(func(fl *flag.Flag) {
		for i, s := range from {
			if s.flag == fl.Name {
				reflect.ValueOf(to[i].to).Elem().Set(reflect.ValueOf(s.to).Elem())
			}
		}
	})
	switch {
	case c.Zone == "":
		return c, errors.New("-zone (or zone in the config file) is required")
	case c.Key == "":
		return c, errors.New("-key (or key in the config file) is required: a file written by tsig-keygen")
	case c.Maint.MinRemaining < 1:
		return c, fmt.Errorf("-min-remaining %d: at least 1 MX record must remain", c.Maint.MinRemaining)
	}
	return c, nil
}
