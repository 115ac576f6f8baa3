package msgauth

import (
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The resolver keeps the answers it got for as long as their TTL says
// (RFC 1035 §3.2.1), at most maxCacheTTL, and "no such record" answers for
// negativeTTL (RFC 2308 allows caching them; a short bound keeps a freshly
// published record from being missed for long). The same few SPF, DMARC
// and key records serve most of a list's traffic, so this removes most
// queries from the hot path.
//
// Temporary failures (SERVFAIL, timeouts) are kept for failureTTL only
// (RFC 2308 §7 allows up to five minutes): without that, while a resolver
// or a sender's DNS is down, every message would wait out the query
// timeout again, and intake would collapse to a few messages a second.
const (
	maxCacheTTL     = 5 * time.Minute
	negativeTTL     = 30 * time.Second
	failureTTL      = 5 * time.Second
	maxCacheEntries = 8192
)

type cacheKey struct {
	qtype uint16
	name  string
}

type cacheEntry struct {
	rrs     []dns.RR
	err     *net.DNSError
	expires time.Time
}

type answerCache struct {
	mu sync.Mutex
	m  map[cacheKey]cacheEntry
}

func (c *answerCache) get(k cacheKey) ([]dns.RR, *net.DNSError, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, nil, false
	}
	if time.Now().After(e.expires) {
		delete(c.m, k)
		return nil, nil, false
	}
	return e.rrs, e.err, true
}

func (c *answerCache) put(k cacheKey, rrs []dns.RR, err *net.DNSError) {
	ttl := negativeTTL
	if err != nil && !err.IsNotFound {
		ttl = failureTTL
	}
	if err == nil {
		ttl = maxCacheTTL
		for _, rr := range rrs {
			ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
		}
	}
	if ttl <= 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[cacheKey]cacheEntry)
	}
	if len(c.m) >= maxCacheEntries {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCacheEntries {
			clear(c.m) // a flood of distinct names: start over rather than grow
		}
	}
	c.m[k] = cacheEntry{rrs: rrs, err: err, expires: now.Add(ttl)}
}
