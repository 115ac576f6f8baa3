package queue

import (
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelSet names the Redis Sentinels of a queue opened with a Sentinel
// URL, and the primary they watch.
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

// clientSettings are what every client of the queue sets, whether it talks
// to one server or finds the primary through Sentinel.
type clientSettings struct {
	readTimeout, writeTimeout, dialTimeout time.Duration
	protocol, poolSize                     int
}

func settingsFor(opt Options, read, write, dial time.Duration, protocol, pool int) clientSettings {
	s := clientSettings{readTimeout: read, writeTimeout: write, dialTimeout: dial, protocol: protocol, poolSize: pool}
	// The socket deadlines are the outer bound; each command's context
	// (Timeout, plus its size at MinRate for chunks of a body, plus
	// ReplicaTimeout for a pipeline that ends with WAIT) is the tighter
	// one.
	sock := opt.sizedTimeout(maxCommandBytes)
	if opt.Replicas > 0 {
		sock += opt.ReplicaTimeout
	}
	if s.readTimeout == 0 {
		s.readTimeout = sock
	}
	if s.writeTimeout == 0 {
		s.writeTimeout = sock
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = 2 * time.Second
	}
	if s.protocol == 0 {
		// RESP2: the queue uses no push messages, and with RESP3 go-redis
		// looks for pending ones before every command (about 2 % of an MX
		// host's CPU under load). A protocol=3 in the URL still wins.
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

// newClient connects to the Redis that rawURL names: one server
// (redis://host:port/db, rediss://, unix://), or, when the URL has a
// master_name, the primary that the Redis Sentinels it names agree on
// (redis://sentinel1:26379/0?master_name=mxq&addr=sentinel2:26379). The
// second return is nil for a single server.
func newClient(rawURL string, opt Options) (*redis.Client, *sentinelSet, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url %q: %w", rawURL, err)
	}
	if !u.Query().Has("master_name") {
		ro, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, nil, fmt.Errorf("redis url %q: %w", rawURL, err)
		}
		s := settingsFor(opt, ro.ReadTimeout, ro.WriteTimeout, ro.DialTimeout, ro.Protocol, ro.PoolSize)
		// A write whose reply was lost must not be sent again: the caller
		// answers 4xx or tries the same idempotent call again, and a
		// sender's retry is caught by the dedup key.
		ro.MaxRetries = -1
		// Without this, context deadlines do not bound socket reads.
		ro.ContextTimeoutEnabled = true
		ro.DisableIdentity = true
		ro.ClientName = connName(ro.ClientName)
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
	s := settingsFor(opt, fo.ReadTimeout, fo.WriteTimeout, fo.DialTimeout, fo.Protocol, fo.PoolSize)
	// As above: go-redis would otherwise resend a write after READONLY,
	// LOADING, MASTERDOWN or a dropped connection, and a resent WAIT runs
	// on a new connection, where it confirms nothing.
	fo.MaxRetries = -1
	fo.ContextTimeoutEnabled = true
	fo.DisableIdentity = true
	fo.ClientName = connName(fo.ClientName)
	fo.ReadTimeout, fo.WriteTimeout, fo.DialTimeout = s.readTimeout, s.writeTimeout, s.dialTimeout
	fo.Protocol, fo.PoolSize = s.protocol, s.poolSize
	sen := &sentinelSet{Master: fo.MasterName, Addrs: fo.SentinelAddrs,
		Username: fo.SentinelUsername, Password: fo.SentinelPassword,
		server: redis.Options{Username: fo.Username, Password: fo.Password, TLSConfig: fo.TLSConfig,
			DialTimeout: s.dialTimeout, ReadTimeout: s.readTimeout, WriteTimeout: s.writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, Protocol: 2, PoolSize: 2}}
	return redis.NewFailoverClient(fo), sen, nil
}

// connName is the name of every connection (CLIENT SETNAME): clientName,
// followed by the client_name of the URL when it has one. Readers counts
// a connection without it that reads the stream as a consumer that
// announces nothing.
func connName(fromURL string) string {
	if fromURL == "" {
		return clientName
	}
	return clientName + ":" + fromURL
}
