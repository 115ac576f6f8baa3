package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"mxq/cmd/internal/tomlfile"
	"mxq/smtpd"
)

// config is mxd's TOML file. Every key is documented in
// docs/examples/mxd.toml.
type config struct {
	Hostname      string   `toml:"hostname"`
	Listen        []string `toml:"listen"`
	Domains       []string `toml:"domains"`
	AuthservID    string   `toml:"authserv_id"`
	Redis         string   `toml:"redis"`
	Queue         string   `toml:"queue"`
	MetricsListen string   `toml:"metrics_listen"`
	LogLevel      string   `toml:"log_level"`

	DNSResolver       string            `toml:"dns_resolver"`
	DNSTimeout        tomlfile.Duration `toml:"dns_timeout"`
	DMARCReject       bool              `toml:"dmarc_reject"`
	DNSTempError      string            `toml:"dns_temperror"`
	MaxDKIMSignatures int               `toml:"max_dkim_signatures"`
	AuthTimeout       tomlfile.Duration `toml:"auth_timeout"`

	TLSCert           string            `toml:"tls_cert"`
	TLSKey            string            `toml:"tls_key"`
	TLSCertificates   []certPair        `toml:"tls_certificates"`
	TLSTicketRotation tomlfile.Duration `toml:"tls_ticket_rotation"`
	ProxyFrom         []string          `toml:"proxy_from"`

	MaxMessageBytes     int64             `toml:"max_message_bytes"`
	MaxHeaderBytes      int               `toml:"max_header_bytes"`
	MemoryBudget        int64             `toml:"memory_budget"`
	SpoolWriters        int               `toml:"spool_writers"`
	MaxRecipients       int               `toml:"max_recipients"`
	MaxReceived         int               `toml:"max_received"`
	MaxConnections      int               `toml:"max_connections"`
	MaxConnectionsPerIP int               `toml:"max_connections_per_ip"`
	IPv6PrefixLen       int               `toml:"ipv6_prefix_len"`
	CommandTimeout      tomlfile.Duration `toml:"command_timeout"`
	WriteTimeout        tomlfile.Duration `toml:"write_timeout"`
	DataTimeout         tomlfile.Duration `toml:"data_timeout"`
	DataGrace           tomlfile.Duration `toml:"data_grace"`
	MinDataRate         int64             `toml:"min_data_rate"`
	EnqueueTimeout      tomlfile.Duration `toml:"enqueue_timeout"`
	RideThrough         tomlfile.Duration `toml:"ride_through"`
	ShutdownTimeout     tomlfile.Duration `toml:"shutdown_timeout"`

	RegistryTTL       tomlfile.Duration `toml:"registry_ttl"`
	HeartbeatInterval tomlfile.Duration `toml:"heartbeat_interval"`
	ReaderIdle        tomlfile.Duration `toml:"reader_idle"`
	DedupWindow       tomlfile.Duration `toml:"dedup_window"`
	Replicas          int               `toml:"replicas"`
	ReplicaTimeout    tomlfile.Duration `toml:"replica_timeout"`
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
	c := &config{
		Redis:             "redis://127.0.0.1:6379/0",
		Queue:             "mxq",
		LogLevel:          "info",
		DNSTempError:      "record",
		DNSTimeout:        tomlfile.Duration{Duration: 5 * time.Second},
		RegistryTTL:       tomlfile.Duration{Duration: 5 * time.Second},
		HeartbeatInterval: tomlfile.Duration{Duration: time.Second},
		TLSTicketRotation: tomlfile.Duration{Duration: time.Hour},
	}
	if _, err := tomlfile.Decode(path, c, "docs/examples/mxd.toml"); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *config) check() error {
	var problems []string
	if c.Hostname == "" {
		problems = append(problems, `hostname is required: this MX host's name as published in MX records, e.g. hostname = "mx1.example.org"`)
	}
	if len(c.Listen) == 0 {
		problems = append(problems, `listen is required: e.g. listen = ["0.0.0.0:25", "[::]:25"]`)
	}
	if len(c.Domains) == 0 {
		problems = append(problems, `domains is required: the list domains served, e.g. domains = ["lists.example.org"]`)
	}
	if c.AuthservID == "" {
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
	if c.DNSTempError != "record" && c.DNSTempError != "tempfail" {
		problems = append(problems, fmt.Sprintf("dns_temperror %q: want \"record\" (queue with temperror) or \"tempfail\" (451 4.4.3)", c.DNSTempError))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, fmt.Sprintf("log_level %q: want debug, info, warn or error", c.LogLevel))
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

// smtpd builds the receiver's configuration.
func (c *config) smtpd(version string) smtpd.Config {
	return smtpd.Config{
		Hostname:            c.Hostname,
		Domains:             c.Domains,
		MaxMessageBytes:     c.MaxMessageBytes,
		MaxRecipients:       c.MaxRecipients,
		MaxReceived:         c.MaxReceived,
		MaxHeaderBytes:      c.MaxHeaderBytes,
		MemoryBudget:        c.MemoryBudget,
		SpoolWriters:        c.SpoolWriters,
		MaxConnections:      c.MaxConnections,
		MaxConnectionsPerIP: c.MaxConnectionsPerIP,
		IPv6PrefixLen:       c.IPv6PrefixLen,
		CommandTimeout:      c.CommandTimeout.Duration,
		WriteTimeout:        c.WriteTimeout.Duration,
		DataTimeout:         c.DataTimeout.Duration,
		DataGrace:           c.DataGrace.Duration,
		MinDataRate:         c.MinDataRate,
		EnqueueTimeout:      c.EnqueueTimeout.Duration,
		RideThrough:         c.RideThrough.Duration,
		ShutdownTimeout:     c.ShutdownTimeout.Duration,
		ProxyFrom:           c.proxies(),
		AuthservID:          c.AuthservID,
		DMARCReject:         c.DMARCReject,
		TempFailDNS:         c.DNSTempError == "tempfail",
		Version:             version,
	}
}
