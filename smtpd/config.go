package smtpd

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config is the receiver's configuration. Zero fields take the defaults
// of a public MX (see Defaults).
type Config struct {
	// Hostname is this MX host's name: in the greeting, in Received, and
	// in the heartbeat.
	Hostname string
	// Domains are the list domains served; recipients at other domains
	// are refused as relaying.
	Domains []string
	// MaxMessageBytes is the size limit, advertised in SIZE.
	MaxMessageBytes int64
	// MaxRecipients per transaction.
	MaxRecipients int
	// MaxReceived is the number of Received headers above which a message
	// is refused as looping. RFC 5321 §6.3 suggests at least 100; a list
	// message never legitimately carries that many.
	MaxReceived int
	// MaxConnections in total and MaxConnectionsPerIP from one address.
	MaxConnections      int
	MaxConnectionsPerIP int
	// IPv6PrefixLen is the length of the IPv6 prefix that counts as one
	// client address for MaxConnectionsPerIP (1 to 128). A subnet is a
	// /64 (RFC 4291 §2.5.1), one host often has one to itself, and can
	// pick any address in it for each connection.
	IPv6PrefixLen int
	// CommandTimeout is the deadline for each command line to arrive.
	CommandTimeout time.Duration
	// WriteTimeout is the deadline for each reply to be written.
	WriteTimeout time.Duration
	// DataTimeout caps the whole of DATA.
	DataTimeout time.Duration
	// DataGrace and MinDataRate: during DATA, after DataGrace the client
	// must have sent MinDataRate bytes per second on average.
	DataGrace   time.Duration
	MinDataRate int64
	// EnqueueTimeout bounds one try at a queue operation: an enqueue, a
	// spool append, a registry read.
	EnqueueTimeout time.Duration
	// RideThrough is how long a session waits, trying again with
	// back-off, while the queue is unavailable for a reason that passes
	// by itself (a Redis restart, a failover, a replica late to confirm;
	// see queue.Transient), before it answers 451. The sender waits for
	// the reply meanwhile: RFC 5321 §4.5.3.2 gives a client 5 minutes for
	// the reply to RCPT and 10 for the reply to DATA. Negative: no waiting.
	RideThrough time.Duration
	// ShutdownTimeout bounds how long transactions in flight may take to
	// finish on shutdown.
	ShutdownTimeout time.Duration
	// ProxyFrom are the addresses of load balancers that put a PROXY
	// header (v1 or v2) in front of each connection. Connections from
	// them must carry one; from anyone else one is refused.
	ProxyFrom []netip.Prefix
	// TLS enables STARTTLS with this configuration (TLS 1.2 or later is
	// enforced). Nil: no STARTTLS.
	TLS *tls.Config
	// Auth computes the Authentication-Results of each message. Nil: no
	// checks and no header (the list software then sees none of ours).
	Auth Authenticator
	// AuthservID is the authserv-id of our Authentication-Results; incoming
	// fields that claim it are removed (RFC 8601 §5).
	AuthservID string
	// DMARCReject refuses, with 550 5.7.1, messages that fail DMARC whose
	// domain publishes p=reject. Off: the failure is only recorded.
	DMARCReject bool
	// TempFailDNS answers 451 4.4.3 when a check hit a temporary DNS
	// error. Off: the result is recorded as temperror and the message
	// queued.
	TempFailDNS bool
	// MaxHeaderBytes bounds the header section of a message.
	MaxHeaderBytes int
	// MemoryBudget bounds the bytes of message data all sessions hold in
	// memory together. A session that would go over it stops reading from
	// its client until others give memory back: senders slow down, nobody
	// is refused. Each session in DATA holds at most its header section and
	// a 256 KiB batch on its way to the queue, whatever the message's size.
	MemoryBudget int64
	// SpoolWriters bounds how many sessions write chunks of big messages
	// to the queue at once, so that small messages' commits never queue in
	// Redis behind many big writes.
	SpoolWriters int
	// Version is reported in the heartbeat.
	Version string
}

// Defaults returns the defaults of a public MX.
func Defaults() Config {
	return Config{
		MaxMessageBytes:     32 << 20,
		MaxRecipients:       100, // RFC 5321 §4.5.3.1.8: at least 100
		MaxReceived:         50,
		MaxHeaderBytes:      1 << 20,
		MemoryBudget:        256 << 20, // safe on a 2 GiB host
		SpoolWriters:        2,
		MaxConnections:      10000,
		MaxConnectionsPerIP: 20,
		IPv6PrefixLen:       64,
		CommandTimeout:      2 * time.Minute,
		WriteTimeout:        time.Minute,
		DataTimeout:         10 * time.Minute, // RFC 5321 §4.5.3.2.6: DATA termination 10 min
		DataGrace:           30 * time.Second,
		MinDataRate:         1024,
		EnqueueTimeout:      30 * time.Second,
		RideThrough:         30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		Version:             "dev",
	}
}

// Checked returns c with zero fields set from Defaults, or an error
// saying what is missing.
func (c Config) Checked() (Config, error) { return c.withDefaults() }

// withDefaults fills zero fields from Defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := Defaults()
	if c.Hostname == "" {
		return c, fmt.Errorf("hostname is required")
	}
	if len(c.Domains) == 0 {
		return c, fmt.Errorf("domains: at least one list domain is required")
	}
	doms := make([]string, len(c.Domains))
	for i, dom := range c.Domains {
		doms[i] = strings.ToLower(strings.TrimSuffix(dom, "."))
	}
	c.Domains = doms
	setDefault(&c.MaxMessageBytes, d.MaxMessageBytes)
	setDefault(&c.MaxRecipients, d.MaxRecipients)
	setDefault(&c.MaxReceived, d.MaxReceived)
	setDefault(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	setDefault(&c.MemoryBudget, d.MemoryBudget)
	setDefault(&c.SpoolWriters, d.SpoolWriters)
	setDefault(&c.MaxConnections, d.MaxConnections)
	setDefault(&c.MaxConnectionsPerIP, d.MaxConnectionsPerIP)
	setDefault(&c.IPv6PrefixLen, d.IPv6PrefixLen)
	if c.IPv6PrefixLen > 128 {
		return c, fmt.Errorf("ipv6_prefix_len %d: want 1 to 128 (64: one client per /64)", c.IPv6PrefixLen)
	}
	setDefault(&c.CommandTimeout, d.CommandTimeout)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.DataTimeout, d.DataTimeout)
	setDefault(&c.DataGrace, d.DataGrace)
	setDefault(&c.MinDataRate, d.MinDataRate)
	setDefault(&c.EnqueueTimeout, d.EnqueueTimeout)
	switch {
	case c.RideThrough == 0:
		c.RideThrough = d.RideThrough
	case c.RideThrough < 0:
		c.RideThrough = 0
	}
	setDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	if c.Version == "" {
		c.Version = d.Version
	}
	return c, nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// clientKey is what MaxConnectionsPerIP counts for the client address
// ip: the address itself for IPv4, its IPv6PrefixLen prefix for IPv6.
func (c *Config) clientKey(ip netip.Addr) netip.Addr {
	if !ip.Is6() {
		return ip
	}
	p, _ := ip.Prefix(c.IPv6PrefixLen)
	return p.Addr()
}

// localDomain reports whether domain is one of the list domains.
func (c *Config) localDomain(domain string) bool {
	domain = foldDomain(domain)
	for _, d := range c.Domains {
		if d == domain {
			return true
		}
	}
	return false
}
