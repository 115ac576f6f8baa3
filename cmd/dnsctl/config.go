package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"mxq/cmd/internal/tomlfile"
)

// config holds every setting; the TOML file (docs/examples/dnsctl.toml)
// sets it first, flags override the file.
type config struct {
	Zone               string            `toml:"zone"`
	Server             string            `toml:"server"`
	Key                string            `toml:"key"`
	Authoritative      []string          `toml:"authoritative"`
	NS                 bool              `toml:"ns"`
	Redis              string            `toml:"redis"`
	Queue              string            `toml:"queue"`
	MinRemaining       int               `toml:"min_remaining"`
	SMTPPort           int               `toml:"smtp_port"`
	StateFile          string            `toml:"state_file"`
	Margin             tomlfile.Duration `toml:"margin"`
	PropagationTimeout tomlfile.Duration `toml:"propagation_timeout"`
	IdleTimeout        tomlfile.Duration `toml:"idle_timeout"`
	HeartbeatMaxAge    tomlfile.Duration `toml:"heartbeat_max_age"`
	QueryTimeout       tomlfile.Duration `toml:"query_timeout"`
}

func defaults() config {
	return config{
		NS:                 true,
		Redis:              "redis://127.0.0.1:6379/0",
		Queue:              "mxq",
		MinRemaining:       1,
		SMTPPort:           25,
		StateFile:          "/var/lib/dnsctl/state.json",
		Margin:             tomlfile.Duration{Duration: 5 * time.Second},
		PropagationTimeout: tomlfile.Duration{Duration: 2 * time.Minute},
		IdleTimeout:        tomlfile.Duration{Duration: time.Hour},
		HeartbeatMaxAge:    tomlfile.Duration{Duration: 30 * time.Second},
		QueryTimeout:       tomlfile.Duration{Duration: 3 * time.Second},
	}
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

// loadFile reads the TOML file at path into c. Errors name the file and
// line; an unknown key is an error.
func loadFile(path string, c *config) error {
	_, err := tomlfile.Decode(path, c, "docs/examples/dnsctl.toml")
	return err
}

// flags binds every setting to fs, writing into c only the flags that are
// set: call apply after fs.Parse.
type flags struct {
	fs  *flag.FlagSet
	c   config
	cfg string
}

func newFlags(fs *flag.FlagSet) *flags {
	f := &flags{fs: fs, c: defaults()}
	c := &f.c
	fs.StringVar(&f.cfg, "config", "", "read settings from this TOML `file` (flags override it)")
	fs.StringVar(&c.Zone, "zone", "", "the `zone` whose apex MX RRset is managed, e.g. example.org")
	fs.StringVar(&c.Server, "server", "", "primary `host:port` that takes UPDATEs (default: the SOA MNAME, port 53)")
	fs.StringVar(&c.Key, "key", "", "TSIG key `file` as written by tsig-keygen (hmac-sha256, hmac-sha512 or hmac-sha1)")
	fs.Var(list{&c.Authoritative}, "authoritative", "extra authoritative `host:port` to check (repeatable)")
	fs.BoolVar(&c.NS, "ns", c.NS, "also check every address of the zone's NS names, port 53")
	fs.StringVar(&c.Redis, "redis", c.Redis, "Redis `url` of the shared queue")
	fs.StringVar(&c.Queue, "queue", c.Queue, "queue `name` (the Redis hash tag)")
	fs.IntVar(&c.MinRemaining, "min-remaining", c.MinRemaining, "MX records that must remain after a removal (`count`, at least 1)")
	fs.IntVar(&c.SMTPPort, "smtp-port", c.SMTPPort, "SMTP `port` probed on MX hosts")
	fs.StringVar(&c.StateFile, "state", c.StateFile, "local state `file` (written with fsync and rename)")
	fs.Var(&c.Margin, "margin", "wait this `duration` beyond the old TTL")
	fs.Var(&c.PropagationTimeout, "propagation-timeout", "give up when authoritative servers lag this `duration`")
	fs.Var(&c.IdleTimeout, "idle-timeout", "give up when the host is not idle after this `duration`")
	fs.Var(&c.HeartbeatMaxAge, "heartbeat-max-age", "a heartbeat older than this `duration` is not fresh")
	fs.Var(&c.QueryTimeout, "query-timeout", "bound of one DNS exchange (`duration`)")
	return f
}

// resolve returns the file's settings overridden by the flags that were
// set, and checks them.
func (f *flags) resolve() (config, error) {
	c := defaults()
	if f.cfg != "" {
		if err := loadFile(f.cfg, &c); err != nil {
			return c, err
		}
	}
	fromFlags := f.c
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "zone":
			c.Zone = fromFlags.Zone
		case "server":
			c.Server = fromFlags.Server
		case "key":
			c.Key = fromFlags.Key
		case "authoritative":
			c.Authoritative = fromFlags.Authoritative
		case "ns":
			c.NS = fromFlags.NS
		case "redis":
			c.Redis = fromFlags.Redis
		case "queue":
			c.Queue = fromFlags.Queue
		case "min-remaining":
			c.MinRemaining = fromFlags.MinRemaining
		case "smtp-port":
			c.SMTPPort = fromFlags.SMTPPort
		case "state":
			c.StateFile = fromFlags.StateFile
		case "margin":
			c.Margin = fromFlags.Margin
		case "propagation-timeout":
			c.PropagationTimeout = fromFlags.PropagationTimeout
		case "idle-timeout":
			c.IdleTimeout = fromFlags.IdleTimeout
		case "heartbeat-max-age":
			c.HeartbeatMaxAge = fromFlags.HeartbeatMaxAge
		case "query-timeout":
			c.QueryTimeout = fromFlags.QueryTimeout
		}
	})
	switch {
	case c.Zone == "":
		return c, errors.New("-zone (or zone in the config file) is required")
	case c.Key == "":
		return c, errors.New("-key (or key in the config file) is required: a file written by tsig-keygen")
	case c.MinRemaining < 1:
		return c, fmt.Errorf("-min-remaining %d: at least 1 MX record must remain", c.MinRemaining)
	}
	return c, nil
}
