package smtpd

import (
	"context"
	"sync"
	"time"

	"mxq/queue"
)

// Registry returns the recipient registry: the addresses and patterns the
// MX hosts accept mail for.
type Registry interface {
	Registry(ctx context.Context) ([]queue.RegistryEntry, error)
}

// Recipients answers "is this a known list address?" from a copy of the
// registry that is refreshed every TTL, so that a busy MX does not ask
// Redis once per RCPT and every MX agrees within TTL.
type Recipients struct {
	reg Registry
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	patterns []string
	fetched  time.Time
}

// NewRecipients returns a cache of reg that lives ttl.
func NewRecipients(reg Registry, ttl time.Duration) *Recipients {
	return &Recipients{reg: reg, ttl: ttl, now: time.Now}
}

// Known reports whether addr matches an entry of the registry. When the
// registry cannot be read and no copy is at hand, it returns the error
// (the caller answers 4xx). A stale copy is used while Redis is away: the
// message will not be queued then anyway, and the answer stays right.
func (r *Recipients) Known(ctx context.Context, addr string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fetched.IsZero() || r.now().Sub(r.fetched) >= r.ttl {
		entries, err := r.reg.Registry(ctx)
		switch {
		case err == nil:
			r.patterns = r.patterns[:0]
			for _, e := range entries {
				r.patterns = append(r.patterns, e.Pattern)
			}
			r.fetched = r.now()
		case r.fetched.IsZero():
			return false, err
		}
	}
	for _, p := range r.patterns {
		if queue.Match(p, addr) {
			return true, nil
		}
	}
	return false, nil
}
