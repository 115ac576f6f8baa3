package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"mxq/cmd/internal/daemon"
	"mxq/cmd/internal/tomlfile"
	"mxq/queue"
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
	LogLevel      daemon.Level

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
		{Key: "authserv_id", To: &c.SMTP.AuthservID},
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

		{Key: "max_message_bytes", To: &c.SMTP.MaxMessageBytes},
		{Key: "max_header_bytes", To: &c.SMTP.MaxHeaderBytes},
		{Key: "memory_budget", To: &c.SMTP.MemoryBudget},
		{Key: "spool_writers", To: &c.SMTP.SpoolWriters},
		{Key: "max_recipients", To: &c.SMTP.MaxRecipients},
		{Key: "max_received", To: &c.SMTP.MaxReceived},
		{Key: "max_connections", To: &c.SMTP.MaxConnections},
		{Key: "max_connections_per_ip", To: &c.SMTP.MaxConnectionsPerIP},
		{Key: "ipv6_prefix_len", To: &c.SMTP.IPv6PrefixLen},
		{Key: "command_timeout", To: &c.SMTP.CommandTimeout},
		{Key: "write_timeout", To: &c.SMTP.WriteTimeout},
		{Key: "data_timeout", To: &c.SMTP.DataTimeout},
		{Key: "data_grace", To: &c.SMTP.DataGrace},
		{Key: "min_data_rate", To: &c.SMTP.MinDataRate},
		{Key: "enqueue_timeout", To: &c.SMTP.EnqueueTimeout},
		{Key: "ride_through", To: &c.SMTP.RideThrough},
		{Key: "shutdown_timeout", To: &c.SMTP.ShutdownTimeout},

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

// loadConfig reads and checks the file at path. Errors name the file,
// the line where it can, and what to do.
func loadConfig(path string) (*config, error) {
	c := defaults()
	if _, err := tomlfile.Decode(path, c.settings(), "docs/examples/mxd.toml"); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Auth.AuthservID = c.SMTP.AuthservID
	c.SMTP.ProxyFrom = c.proxies()
	return c, nil
}

func (c *config) check() error {
	var problems []string
	if c.SMTP.Hostname == "" {
		problems = append(problems, `hostname is required: this MX host's name as published in MX records, e.g. hostname = "mx1.example.org"`)
	}
	if len(c.Listen) == 0 {
		problems = append(problems, `listen is required: e.g. listen = ["0.0.0.0:25", "[::]:25"]`)
	}
	if len(c.SMTP.Domains) == 0 {
		problems = append(problems, `domains is required: the list domains served, e.g. domains = ["lists.example.org"]`)
	}
	if c.SMTP.AuthservID == "" {
		problems = append(problems, `authserv_id is required: the same value on every MX and in the list software, e.g. authserv_id = "lists.example.org"`)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		problems = append(problems, "tls_cert and tls_key go together: set both for STARTTLS, or neither")
	}
	for i, p := range c.TLSCertificates {
		if p.Cert == "" || p.Key == "" {
			problems = append(problems, fmt.Sprintf(`tls_certificates[%d] needs both cert and key, e.g. { cert = "/etc/mxq/ecdsa.pem", key = "/etc/mxq/ecdsa.key" }`, i))
		}
	}
	for _, p := range c.ProxyFrom {
		if _, err := parsePrefix(p); err != nil {
			problems = append(problems, fmt.Sprintf("proxy_from %q: want an address or CIDR prefix such as \"10.0.0.5\" or \"10.0.0.0/24\"", p))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
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

// proxies returns proxy_from, checked.
func (c *config) proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.ProxyFrom {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
