package redisha

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says how Open sets up its clients.
type Config struct {
	// Name names every connection (CLIENT SETNAME): Name, or Name:NAME
	// when the URL has client_name=NAME.
	Name string
	// Timeout bounds each command this package sends itself (INFO,
	// SENTINEL, CLIENT PAUSE, REPLICAOF), and is the bound a user of the
	// Client gives its own small commands (Client.Timeout). It must be
	// positive.
	Timeout time.Duration
	// SocketTimeout is the read and write deadline of a connection's
	// socket, where the URL sets none: the outer bound of any command,
	// whose context is the tighter one. Zero means Timeout.
	SocketTimeout time.Duration
}

// Client is the connection to the Redis of a URL: one server, or the
// primary that Redis Sentinels name, followed through a failover. It is
// safe for concurrent use.
type Client struct {
	rdb       *redis.Client
	sentinels *sentinelSet // nil for a single server
	timeout   time.Duration
}

// Open returns the client of the Redis that rawURL names: one server
// (redis://[user:pass@]host:port/db, rediss:// for TLS, unix:///path),
// or, when the URL has a master_name, the primary that the Redis
// Sentinels it names agree on, in go-redis's form
// (redis://sentinel1:26379/0?master_name=mxq&addr=sentinel2:26379).
// It does not contact Redis.
func Open(rawURL string, cfg Config) (*Client, error) {
	if cfg.Timeout <= 0 {
		return nil, errors.New("redisha: Config.Timeout must be positive")
	}
	if cfg.SocketTimeout <= 0 {
		cfg.SocketTimeout = cfg.Timeout
	}
	rdb, sen, err := newClient(rawURL, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{rdb: rdb, sentinels: sen, timeout: cfg.Timeout}, nil
}

// Redis is the go-redis client of the primary, for the commands of the
// packages that keep their keys in this Redis.
func (c *Client) Redis() *redis.Client { return c.rdb }

// Timeout is Config.Timeout.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Close closes the connections to Redis.
func (c *Client) Close() error { return c.rdb.Close() }

// ctx bounds one command by Timeout.
func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// sentinelSet names the Redis Sentinels of a client opened with a
// Sentinel URL, and the primary they watch.
type sentinelSet struct {
	// Master is the name the sentinels know the primary by (master_name).
	Master string
	// Addrs are the sentinels given in the URL (host:port).
	Addrs []string
	// Username and Password authenticate to the sentinels, when set.
	Username, Password string

	// server is how to reach one data server directly (its credentials,
	// TLS, timeouts; Addr left empty), for what must go to a given server
	// rather than to whichever is primary: the switch-over, the state of
	// the replicas.
	server redis.Options
}

// sentinel returns a client of the sentinel at addr.
func (s *sentinelSet) sentinel(addr string) *redis.SentinelClient {
	o := s.server
	o.Addr, o.Username, o.Password = addr, s.Username, s.Password
	return redis.NewSentinelClient(&o)
}

// direct returns a client of the one data server at addr. Its commands
// (INFO, CLIENT PAUSE, REPLICAOF) may be sent again after a dropped
// connection: Sentinel kills the client connections of a server it
// reconfigures.
func (s *sentinelSet) direct(addr string) *redis.Client {
	o := s.server
	o.Addr = addr
	return redis.NewClient(&o)
}

// clientSettings are what every client sets, whether it talks to one
// server or finds the primary through Sentinel.
type clientSettings struct {
	readTimeout, writeTimeout, dialTimeout time.Duration
	protocol, poolSize                     int
}

// settingsFor fills in what the URL leaves out (zero).
func settingsFor(cfg Config, read, write, dial time.Duration, protocol, pool int) clientSettings {
	s := clientSettings{readTimeout: read, writeTimeout: write, dialTimeout: dial, protocol: protocol, poolSize: pool}
	if s.readTimeout == 0 {
		s.readTimeout = cfg.SocketTimeout
	}
	if s.writeTimeout == 0 {
		s.writeTimeout = cfg.SocketTimeout
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = 2 * time.Second
	}
	if s.protocol == 0 {
		// RESP2: mxq uses no push messages, and with RESP3 go-redis
		// looks for pending ones before every command (about 2 % of an
		// MX host's CPU under load). A protocol=3 in the URL still wins.
		s.protocol = 2
	}
	// With appendfsync always, Redis fsyncs once per pass of its event
	// loop for every write of that pass: the more connections carry
	// writes at once, the more messages share an fsync. go-redis's default
	// (10 per CPU) is below the sessions of a busy MX. pool_size in the
	// URL still wins.
	if s.poolSize == 0 {
		s.poolSize = max(64, 10*runtime.GOMAXPROCS(0))
	}
	return s
}

// newClient makes the client of Open. The second return is nil for a
// single server.
func newClient(rawURL string, cfg Config) (*redis.Client, *sentinelSet, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url %q: %w", rawURL, err)
	}
	if !u.Query().Has("master_name") {
		ro, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, nil, fmt.Errorf("redis url %q: %w", rawURL, err)
		}
		s := settingsFor(cfg, ro.ReadTimeout, ro.WriteTimeout, ro.DialTimeout, ro.Protocol, ro.PoolSize)
		// A write whose reply was lost must not be sent again by the
		// library: only the caller knows whether it may be (the queue
		// answers 4xx, or tries an idempotent call again itself).
		ro.MaxRetries = -1
		// Without this, context deadlines do not bound socket reads.
		ro.ContextTimeoutEnabled = true
		ro.DisableIdentity = true
		ro.ClientName = connName(cfg.Name, ro.ClientName)
		ro.ReadTimeout, ro.WriteTimeout, ro.DialTimeout = s.readTimeout, s.writeTimeout, s.dialTimeout
		ro.Protocol, ro.PoolSize = s.protocol, s.poolSize
		return redis.NewClient(ro), nil, nil
	}
	fo, err := redis.ParseFailoverURL(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis sentinel url %q: %w", rawURL, err)
	}
	if fo.MasterName == "" {
		return nil, nil, fmt.Errorf("redis sentinel url %q: master_name is empty: give the name the sentinels monitor, e.g. master_name=mxq", rawURL)
	}
	s := settingsFor(cfg, fo.ReadTimeout, fo.WriteTimeout, fo.DialTimeout, fo.Protocol, fo.PoolSize)
	// As above: go-redis would otherwise resend a write after READONLY,
	// LOADING, MASTERDOWN or a dropped connection, and a resent WAIT runs
	// on a new connection, where it confirms nothing.
	fo.MaxRetries = -1
	fo.ContextTimeoutEnabled = true
	fo.DisableIdentity = true
	fo.ClientName = connName(cfg.Name, fo.ClientName)
	fo.ReadTimeout, fo.WriteTimeout, fo.DialTimeout = s.readTimeout, s.writeTimeout, s.dialTimeout
	fo.Protocol, fo.PoolSize = s.protocol, s.poolSize
	sen := &sentinelSet{Master: fo.MasterName, Addrs: fo.SentinelAddrs,
		Username: fo.SentinelUsername, Password: fo.SentinelPassword,
		server: redis.Options{Username: fo.Username, Password: fo.Password, TLSConfig: fo.TLSConfig,
			DialTimeout: s.dialTimeout, ReadTimeout: s.readTimeout, WriteTimeout: s.writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, Protocol: 2, PoolSize: 2}}
	return redis.NewFailoverClient(fo), sen, nil
}

// connName is the name of every connection (CLIENT SETNAME): name,
// followed by the client_name of the URL when it has one. The queue
// counts a connection that reads the stream without its name as a
// consumer that announces nothing.
func connName(name, fromURL string) string {
	if fromURL == "" {
		return name
	}
	return name + ":" + fromURL
}
