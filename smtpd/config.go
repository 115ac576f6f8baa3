package smtpd

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"mxq/setting"
)

// Config is the receiver's settings: plain values, used as they are
// given. Start from Defaults, the settings of a public MX; New refuses
// what Check refuses and fills nothing in. The live objects a Server
// works with (the queue, TLS, the authentication checks) are its Deps.
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
	// DataGrace, MinDataRate and DataRateWindow: during DATA, after
	// DataGrace the client must keep sending MinDataRate bytes per second,
	// on average over any DataRateWindow. Each byte earns 1/MinDataRate
	// seconds, and at most DataRateWindow can be saved up: a session that
	// sent a burst and went quiet is cut DataRateWindow later at most,
	// whatever the size of the burst. Time that mxd spends not reading
	// (waiting for memory or the queue) is not counted.
	DataGrace      time.Duration
	MinDataRate    int64
	DataRateWindow time.Duration
	// EnqueueTimeout bounds one try at a queue operation: an enqueue, a
	// spool append, a registry read.
	EnqueueTimeout time.Duration
	// RideThrough is how long a session waits, trying again with
	// back-off, while the queue is unavailable for a reason that passes
	// by itself (a Redis restart, a failover, a replica late to confirm;
	// see queue.Transient), before it answers 451. The sender waits for
	// the reply meanwhile: RFC 5321 §4.5.3.2 gives a client 5 minutes for
	// the reply to RCPT and 10 for the reply to DATA. Zero or negative: no
	// waiting.
	RideThrough time.Duration
	// ShutdownTimeout bounds how long transactions in flight may take to
	// finish on shutdown.
	ShutdownTimeout time.Duration
	// ProxyFrom are the addresses of load balancers that put a PROXY
	// header (v1 or v2) in front of each connection. Connections from
	// them must carry one; from anyone else one is refused.
	ProxyFrom []netip.Prefix
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
	// MaxHeaderBytes bounds the header section of a message. It is held
	// whole in memory until it ends, so it also bounds what a session that
	// never ends its header section holds: a 64 KiB block doubled until
	// the header fits, 128 KiB at the default.
	MaxHeaderBytes int
	// MemoryBudget bounds the bytes of message data all sessions hold in
	// memory together. A session that would go over it stops reading from
	// its client until others give memory back: senders slow down, nobody
	// is refused. Each session in DATA holds at most its header section and
	// a 256 KiB batch on its way to the queue, whatever the message's size;
	// a slow one, one 64 KiB block. When a session waits for memory, the
	// sessions that hold the most of it for the fewest bytes received in
	// the last few seconds are made to give it up (451 4.3.2, closed).
	MemoryBudget int64
	// SpoolWriters bounds how many sessions write batches of big messages
	// to the queue at once while only big messages arrive: the more bytes
	// each pass of Redis's loop (and each of its fsyncs) carries, the
	// faster they go. SpoolWritersShared is the bound while small
	// messages are being committed too (one in the last second), so that
	// a small message's commit never waits in Redis behind many big
	// writes.
	SpoolWriters, SpoolWritersShared int
	// Milter is the content filters (milters) every message passes.
	Milter MilterConfig
	// Version is reported in the heartbeat.
	Version string

	// Limits per client (docs/mxd.md, "Limits per client"). A client is
	// an address, or an IPv6 prefix of IPv6PrefixLen. A negative limit
	// is off.
	//
	// ConnectionRateLimit, MessageRateLimit and RecipientRateLimit are the
	// new connections, MAIL commands and RCPT commands let through from a
	// client per RateTimeUnit, counted over a sliding window. Over them:
	// 421 4.7.0 at connect, 450 4.7.1 at MAIL and at RCPT.
	ConnectionRateLimit int
	MessageRateLimit    int
	RecipientRateLimit  int
	RateTimeUnit        time.Duration
	// MaxRateClients bounds the clients the rate limits count in one
	// RateTimeUnit; a client beyond it is let through uncounted.
	MaxRateClients int
	// SoftErrorLimit, HardErrorLimit and ErrorSleepTime: once a session
	// has made SoftErrorLimit errors (5xx replies, and 4.7.x refusals)
	// without queueing a message, each reply waits ErrorSleepTime for
	// every error from the soft limit on; at HardErrorLimit it gets
	// 421 4.7.0 and is closed. An ErrorSleepTime of zero or less: no
	// waiting.
	SoftErrorLimit int
	HardErrorLimit int
	ErrorSleepTime time.Duration
}

// Defaults returns the settings of a public MX, but for the two that
// have none: Hostname and Domains. Each default of the receiver is
// stated here and nowhere else.
func Defaults() Config {
	return Config{
		MaxMessageBytes:     32 << 20,
		MaxRecipients:       100, // RFC 5321 §4.5.3.1.8: at least 100
		MaxReceived:         50,
		MaxHeaderBytes:      100 << 10, // Postfix's header_size_limit: 102400
		MemoryBudget:        256 << 20, // safe on a 2 GiB host
		SpoolWriters:        32,
		SpoolWritersShared:  2,
		MaxConnections:      10000,
		MaxConnectionsPerIP: 20,
		IPv6PrefixLen:       64,
		CommandTimeout:      2 * time.Minute,
		WriteTimeout:        time.Minute,
		DataTimeout:         10 * time.Minute, // RFC 5321 §4.5.3.2.6: DATA termination 10 min
		DataGrace:           30 * time.Second,
		MinDataRate:         1024,
		DataRateWindow:      30 * time.Second,
		EnqueueTimeout:      30 * time.Second,
		RideThrough:         30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		Version:             "dev",
		Milter:              milterDefaults(),
		// Twice the heaviest single sender of the tests (10 messages a
		// second) and a list MX's one or two recipients a message; the
		// registry can then be probed at 40 addresses a second from one
		// client, not at line speed (docs/mxd.md).
		ConnectionRateLimit: 1200,
		MessageRateLimit:    1200,
		RecipientRateLimit:  2400,
		RateTimeUnit:        time.Minute, // Postfix's anvil_rate_time_unit
		MaxRateClients:      100000,
		SoftErrorLimit:      10, // Postfix's smtpd_soft_error_limit
		HardErrorLimit:      20, // smtpd_hard_error_limit
		ErrorSleepTime:      time.Second,
	}
}

// Check reports each setting of c that a Server cannot use as a
// *setting.Error. It fills nothing in.
func (c *Config) Check() error {
	ck := setting.For(c)
	ck.Required(&c.Hostname)
	if len(c.Domains) == 0 {
		ck.Add(&c.Domains, setting.Missing+": at least one list domain")
	}
	for _, p := range c.ProxyFrom {
		if !p.IsValid() {
			ck.Add(&c.ProxyFrom, "want addresses or CIDR prefixes")
		}
	}
	for _, v := range []*int64{&c.MaxMessageBytes, &c.MemoryBudget, &c.MinDataRate} {
		setting.Positive(ck, v)
	}
	for _, v := range []*int{&c.MaxRecipients, &c.MaxReceived, &c.MaxHeaderBytes, &c.SpoolWriters, &c.SpoolWritersShared,
		&c.MaxConnections, &c.MaxConnectionsPerIP, &c.MaxRateClients} {
		setting.Positive(ck, v)
	}
	setting.Between(ck, &c.IPv6PrefixLen, 1, 128)
	for _, v := range []*time.Duration{&c.CommandTimeout, &c.WriteTimeout, &c.DataTimeout, &c.DataRateWindow,
		&c.EnqueueTimeout, &c.ShutdownTimeout, &c.RateTimeUnit} {
		setting.Positive(ck, v)
	}
	setting.NotNegative(ck, &c.DataGrace)
	// A limit of 0 would refuse everything: off is negative.
	for _, v := range []*int{&c.ConnectionRateLimit, &c.MessageRateLimit, &c.RecipientRateLimit,
		&c.SoftErrorLimit, &c.HardErrorLimit} {
		if *v == 0 {
			ck.Add(v, "want more than 0, or -1 for off")
		}
	}
	return errors.Join(ck.Err(), c.Milter.Check())
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

// foldDomains returns the list domains in the form localDomain compares.
func foldDomains(domains []string) []string {
	out := make([]string, len(domains))
	for i, d := range domains {
		out[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	return out
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
