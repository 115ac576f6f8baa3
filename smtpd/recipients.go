package smtpd

import (
	"context"
	"fmt"
	"sync"
	"time"

	mailaddr "mxq/address"
	"mxq/queue"
)

// Registry returns the recipient registry: the addresses and patterns the
// MX hosts accept mail for.
type Registry interface {
	Registry(ctx context.Context) ([]queue.RegistryEntry, error)
}

// Recipients answers "is this a known list address?" from a copy of the
// registry that is refreshed every TTL, so that a busy MX does not ask
// Redis once per RCPT and every MX agrees within TTL. A stale copy keeps
// answering while one refresh runs in the background: RCPT never waits on
// Redis while mail keeps coming.
type Recipients struct {
	reg Registry
	ttl time.Duration
	now func() time.Time

	mu         sync.Mutex
	patterns   []string // replaced, never modified: readers keep a snapshot
	fetched    time.Time
	refreshing bool
}

// DefaultRegistryTTL is how long a Recipients' copy lives when
// NewRecipients is given no ttl: every MX agrees on a new list within
// twice this.
const DefaultRegistryTTL = 5 * time.Second

// NewRecipients returns a cache of reg that lives ttl (mxd's default is
// DefaultRegistryTTL). It panics on a ttl of 0 or less, as
// time.NewTicker does: a caller checks the setting first.
func NewRecipients(reg Registry, ttl time.Duration) *Recipients {
	if ttl <= 0 {
		panic(fmt.Sprintf("smtpd: NewRecipients: ttl %v: want more than 0", ttl))
	}
	return &Recipients{reg: reg, ttl: ttl, now: time.Now}
}

// Known reports whether addr matches an entry of the registry. When the
// registry cannot be read and no copy is at hand, it returns the error
// (the caller answers 4xx). A stale copy is used while Redis is away: the
// message will not be queued then anyway, and the answer stays right.
func (r *Recipients) Known(ctx context.Context, addr string) (bool, error) {
	patterns, err := r.current(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range patterns {
		if mailaddr.Match(p, addr) {
			return true, nil
		}
	}
	return false, nil
}

// current returns the copy. Younger than ttl, it is used as is; up to
// twice ttl old, it is used while one background refresh replaces it (a
// busy MX never waits); older, as after a quiet spell, it is fetched
// again before answering, so a list added meanwhile is not refused with a
// 550. When that fetch fails, the old copy is used.
func (r *Recipients) current(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	patterns, age := r.patterns, r.now().Sub(r.fetched)
	have := !r.fetched.IsZero()
	if have && age < 2*r.ttl {
		if age >= r.ttl && !r.refreshing {
			r.refreshing = true
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), max(r.ttl, 5*time.Second))
				defer cancel()
				r.fetch(ctx)
			}()
		}
		r.mu.Unlock()
		return patterns, nil
	}
	r.mu.Unlock()
	fresh, err := r.fetch(ctx)
	if err != nil && have {
		return patterns, nil
	}
	return fresh, err
}

// fetch reads the registry and, when that works, makes it the copy.
func (r *Recipients) fetch(ctx context.Context) ([]string, error) {
	entries, err := r.reg.Registry(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshing = false
	if err != nil {
		return nil, err
	}
	patterns := make([]string, len(entries))
	for i, e := range entries {
		patterns[i] = e.Pattern
	}
	r.patterns, r.fetched = patterns, r.now()
	return patterns, nil
}
