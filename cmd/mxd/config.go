package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"mxq/cmd/internal/tomlfile"
	"mxq/queue"
	"mxq/setting"
	"mxq/smtpd"
	"mxq/smtpd/msgauth"
)

// config is mxd's settings: the configurations of the packages it wires,
// starting from their defaults, and what only the command uses. settings
// binds the keys of the TOML file (docs/examples/mxd.toml) to them.
type config struct {
	SMTP  smtpd.Config
	Queue queue.Options
	Auth  msgauth.Config

	Listen        []string
	Redis         string
	MetricsListen string
	LogLevel      slog.Level

	DNSResolver string
	DNSTimeout  time.Duration

	RegistryTTL       time.Duration
	HeartbeatInterval time.Duration
	ReaderIdle        time.Duration

	TLSCert           string
	TLSKey            string
	TLSCertificates   []certPair
	TLSTicketRotation time.Duration
	ProxyFrom         []string
}

// defaults are the packages' defaults; mxd adds none of its own.
func defaults() *config {
	return &config{
		SMTP:              smtpd.Defaults(),
		Queue:             queue.DefaultOptions(),
		Auth:              msgauth.Defaults(),
		Redis:             queue.DefaultURL,
		DNSTimeout:        msgauth.DefaultQueryTimeout,
		RegistryTTL:       smtpd.DefaultRegistryTTL,
		HeartbeatInterval: smtpd.DefaultHeartbeatInterval,
		ReaderIdle:        queue.DefaultReaderIdle,
		TLSTicketRotation: smtpd.DefaultTicketRotation,
	}
}

// settings binds each key of mxd.toml to what it sets.
func (c *config) settings() []tomlfile.Setting {
	return []tomlfile.Setting{
		{Key: "hostname", To: &c.SMTP.Hostname},
		{Key: "listen", To: &c.Listen},
		{Key: "domains", To: &c.SMTP.Domains},
		{Key: "authserv_id", To: &c.Auth.AuthservID},
		{Key: "redis", To: &c.Redis},
		{Key: "queue", To: &c.Queue.Name},
		{Key: "metrics_listen", To: &c.MetricsListen},
		{Key: "log_level", To: &c.LogLevel},

		{Key: "dns_resolver", To: &c.DNSResolver},
		{Key: "dns_timeout", To: &c.DNSTimeout},
		{Key: "auth_timeout", To: &c.Auth.Timeout},
		{Key: "max_dkim_signatures", To: &c.Auth.MaxDKIMSignatures},
		{Key: "dmarc_reject", To: &c.SMTP.DMARCReject},
		{Key: "dns_temperror", To: (*dnsTempError)(&c.SMTP.TempFailDNS)},

		{Key: "max_message_bytes", To: tomlfile.Size(&c.SMTP.MaxMessageBytes)},
		{Key: "max_header_bytes", To: tomlfile.Size(&c.SMTP.MaxHeaderBytes)},
		{Key: "memory_budget", To: tomlfile.Size(&c.SMTP.MemoryBudget)},
		{Key: "spool_writers", To: &c.SMTP.SpoolWriters},
		{Key: "spool_writers_shared", To: &c.SMTP.SpoolWritersShared},
		{Key: "max_recipients", To: &c.SMTP.MaxRecipients},
		{Key: "max_received", To: &c.SMTP.MaxReceived},
		{Key: "max_connections", To: &c.SMTP.MaxConnections},
		{Key: "max_connections_per_ip", To: &c.SMTP.MaxConnectionsPerIP},
		{Key: "ipv6_prefix_len", To: &c.SMTP.IPv6PrefixLen},
		{Key: "connection_rate_limit", To: &c.SMTP.ConnectionRateLimit},
		{Key: "message_rate_limit", To: &c.SMTP.MessageRateLimit},
		{Key: "recipient_rate_limit", To: &c.SMTP.RecipientRateLimit},
		{Key: "rate_time_unit", To: &c.SMTP.RateTimeUnit},
		{Key: "max_rate_clients", To: &c.SMTP.MaxRateClients},
		{Key: "soft_error_limit", To: &c.SMTP.SoftErrorLimit},
		{Key: "hard_error_limit", To: &c.SMTP.HardErrorLimit},
		{Key: "error_sleep_time", To: &c.SMTP.ErrorSleepTime},
		{Key: "command_timeout", To: &c.SMTP.CommandTimeout},
		{Key: "write_timeout", To: &c.SMTP.WriteTimeout},
		{Key: "data_timeout", To: &c.SMTP.DataTimeout},
		{Key: "data_grace", To: &c.SMTP.DataGrace},
		{Key: "min_data_rate", To: &c.SMTP.MinDataRate},
		{Key: "data_rate_window", To: &c.SMTP.DataRateWindow},
		{Key: "enqueue_timeout", To: &c.SMTP.EnqueueTimeout},
		{Key: "ride_through", To: &c.SMTP.RideThrough},
		{Key: "shutdown_timeout", To: &c.SMTP.ShutdownTimeout},

		{Key: "milters", To: &c.SMTP.Milter.Milters},
		{Key: "milter_connect_timeout", To: &c.SMTP.Milter.ConnectTimeout},
		{Key: "milter_command_timeout", To: &c.SMTP.Milter.CommandTimeout},
		{Key: "milter_content_timeout", To: &c.SMTP.Milter.ContentTimeout},
		{Key: "milter_default_action", To: &c.SMTP.Milter.DefaultAction},
		{Key: "milter_max_connections", To: &c.SMTP.Milter.MaxConnections},
		{Key: "milter_ride_through", To: &c.SMTP.Milter.RideThrough},

		{Key: "registry_ttl", To: &c.RegistryTTL},
		{Key: "heartbeat_interval", To: &c.HeartbeatInterval},
		{Key: "reader_idle", To: &c.ReaderIdle},
		{Key: "dedup_window", To: &c.Queue.DedupWindow},
		{Key: "replicas", To: &c.Queue.Replicas},
		{Key: "replica_timeout", To: &c.Queue.ReplicaTimeout},

		{Key: "tls_cert", To: &c.TLSCert},
		{Key: "tls_key", To: &c.TLSKey},
		{Key: "tls_certificates", To: &c.TLSCertificates},
		{Key: "tls_ticket_rotation", To: &c.TLSTicketRotation},
		{Key: "proxy_from", To: &c.ProxyFrom},
	}
}

// dnsTempError is dns_temperror: "record" queues a message whose checks
// met a temporary DNS error, with temperror in its results; "tempfail"
// answers 451 4.4.3 (smtpd.Config.TempFailDNS).
type dnsTempError bool

func (d *dnsTempError) UnmarshalText(b []byte) error {
	switch string(b) {
	case "record":
		*d = false
	case "tempfail":
		*d = true
	default:
		return fmt.Errorf("%q: want \"record\" (queue with temperror) or \"tempfail\" (451 4.4.3)", b)
	}
	return nil
}

func (d dnsTempError) String() string {
	if d {
		return "tempfail"
	}
	return "record"
}

// certPair is one entry of tls_certificates.
type certPair struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// certFiles are every certificate configured, tls_cert first.
func (c *config) certFiles() []smtpd.CertFiles {
	var out []smtpd.CertFiles
	if c.TLSCert != "" {
		out = append(out, smtpd.CertFiles{Cert: c.TLSCert, Key: c.TLSKey})
	}
	for _, p := range c.TLSCertificates {
		out = append(out, smtpd.CertFiles{Cert: p.Cert, Key: p.Key})
	}
	return out
}

// loadConfig reads the file at path over the defaults and checks the
// result once, with the packages' own checks: what it returns, the
// packages take as it is. Errors name the file, the key and its line,
// and what to do.
func loadConfig(path string) (*config, error) {
	c := defaults()
	f, err := tomlfile.Decode(path, c.settings(), "docs/examples/mxd.toml")
	if err != nil {
		return nil, err
	}
	c.SMTP.AuthservID = c.Auth.AuthservID
	if err := errors.Join(c.readProxies(f), f.Explain(c.check())); err != nil {
		return nil, err
	}
	return c, nil
}

// check reports what the file leaves the packages unable to use.
func (c *config) check() error {
	ck := setting.For(c)
	if len(c.Listen) == 0 {
		ck.Add(&c.Listen, setting.Missing+`: e.g. listen = ["0.0.0.0:25", "[::]:25"]`)
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		ck.Add(&c.TLSKey, setting.Missing+" with tls_cert: set both for STARTTLS, or neither")
	case c.TLSKey != "" && c.TLSCert == "":
		ck.Add(&c.TLSCert, setting.Missing+" with tls_key: set both for STARTTLS, or neither")
	}
	for i, p := range c.TLSCertificates {
		if p.Cert == "" || p.Key == "" {
			ck.Add(&c.TLSCertificates, fmt.Sprintf(`entry %d needs both cert and key, e.g. { cert = "/etc/mxq/ecdsa.pem", key = "/etc/mxq/ecdsa.key" }`, i+1))
		}
	}
	for _, d := range []*time.Duration{&c.DNSTimeout, &c.RegistryTTL, &c.HeartbeatInterval, &c.ReaderIdle, &c.TLSTicketRotation} {
		setting.Positive(ck, d)
	}
	return errors.Join(ck.Err(), c.SMTP.Check(), c.Queue.Check(), c.Auth.Check())
}

// readProxies reads proxy_from, once, into the receiver's settings.
func (c *config) readProxies(f *tomlfile.File) error {
	var problems []error
	c.SMTP.ProxyFrom = nil
	for _, s := range c.ProxyFrom {
		p, err := parsePrefix(s)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: proxy_from %q: want an address or CIDR prefix such as \"10.0.0.5\" or \"10.0.0.0/24\"", f.At("proxy_from"), s))
			continue
		}
		c.SMTP.ProxyFrom = append(c.SMTP.ProxyFrom, p)
	}
	return errors.Join(problems...)
}

// parsePrefix reads "10.0.0.5" or "10.0.0.0/24".
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
