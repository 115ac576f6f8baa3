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
	"mxq/setting"
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
	TLSATTL       time.Duration
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
		TLSATTL:      dnsctl.DefaultTLSATTL * time.Second,
	}
}

// binding is one key of dnsctl.toml, the flag that overrides it, and what
// both set.
type binding struct {
	key, flag, usage string
	to               any
}

func (c *config) settings() []binding {
	return []binding{
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
		{"tlsa_ttl", "tlsa-ttl", "TTL (`duration`, whole seconds) of a host's first TLSA records; later ones take the RRset's", &c.TLSATTL},
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
	return c, c.explain(c.check())
}

// check reports each setting dnsctl, its Maintenance and the queue
// cannot use, once, with the packages' own checks.
func (c *config) check() error {
	ck := setting.For(c)
	ck.Required(&c.Zone)
	if c.Key == "" {
		ck.Add(&c.Key, setting.Missing+": a file written by tsig-keygen")
	}
	setting.Positive(ck, &c.QueryTimeout)
	// A TTL is a count of seconds (RFC 1035 §3.2.1).
	if c.TLSATTL < time.Second || c.TLSATTL%time.Second != 0 {
		ck.Add(&c.TLSATTL, "want whole seconds, at least 1s")
	}
	return errors.Join(ck.Err(), c.Maint.Check(), c.Queue.Check())
}

// explain names each setting err refuses by its flag and key:
// "-min-remaining (or min_remaining in the config file) 0: want 1 or
// more". A setting without either keeps its Go name.
func (c *config) explain(err error) error {
	refused, others := setting.All(err)
	for _, e := range refused {
		msg := e.Error()
		for _, s := range c.settings() {
			if reflect.ValueOf(s.to).Pointer() != reflect.ValueOf(e.Field).Pointer() ||
				reflect.TypeOf(s.to) != reflect.TypeOf(e.Field) {
				continue
			}
			name := fmt.Sprintf("-%s (or %s in the config file)", s.flag, s.key)
			if strings.HasPrefix(e.Problem, setting.Missing) {
				msg = name + " " + e.Problem
			} else {
				msg = fmt.Sprintf("%s %v: %s", name, setting.Value(e.Field), e.Problem)
			}
		}
		others = append(others, errors.New(msg))
	}
	return errors.Join(others...)
}
