package queue

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The recipient registry is the set of addresses (and patterns) the MX
// hosts accept mail for. Operators edit the static part (mxq lists);
// consumers publish their routes as a whole (listd). A recipient is known
// when it matches an entry of either.

// AddRecipients adds addresses or patterns to the static registry.
func (q *Queue) AddRecipients(ctx context.Context, entries ...string) error {
	return q.editRecipients(ctx, true, entries)
}

// RemoveRecipients removes addresses or patterns from the static registry.
func (q *Queue) RemoveRecipients(ctx context.Context, entries ...string) error {
	return q.editRecipients(ctx, false, entries)
}

func (q *Queue) editRecipients(ctx context.Context, add bool, entries []string) error {
	members := make([]any, 0, len(entries))
	for _, e := range entries {
		norm, err := NormalizePattern(e)
		if err != nil {
			return err
		}
		members = append(members, norm)
	}
	if len(members) == 0 {
		return nil
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	k := q.key("rcpt", "static")
	if add {
		return classify(q.rdb.SAdd(ctx, k, members...).Err())
	}
	return classify(q.rdb.SRem(ctx, k, members...).Err())
}

// PublishRoutes replaces the routes published by consumers with entries,
// in one step.
func (q *Queue) PublishRoutes(ctx context.Context, entries []string) error {
	members := make([]any, 0, len(entries))
	for _, e := range entries {
		norm, err := NormalizePattern(e)
		if err != nil {
			return err
		}
		members = append(members, norm)
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	k := q.key("rcpt", "routes")
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k)
		if len(members) > 0 {
			p.SAdd(ctx, k, members...)
		}
		return nil
	})
	return classify(err)
}

// RegistryEntry is one entry of the recipient registry and where it
// comes from: "static" (mxq lists) or "routes" (published by a consumer).
type RegistryEntry struct {
	Pattern string `json:"pattern"`
	Source  string `json:"source"`
}

// Registry returns every entry of the registry, sorted.
func (q *Queue) Registry(ctx context.Context) ([]RegistryEntry, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var out []RegistryEntry
	for _, src := range []string{"static", "routes"} {
		ms, err := q.rdb.SMembers(ctx, q.key("rcpt", src)).Result()
		if err != nil {
			return nil, classify(err)
		}
		for _, m := range ms {
			out = append(out, RegistryEntry{Pattern: m, Source: src})
		}
	}
	slices.SortFunc(out, func(a, b RegistryEntry) int {
		if c := strings.Compare(a.Pattern, b.Pattern); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out, nil
}

// NormalizePattern checks an address or pattern and returns it lower-cased.
// A pattern is an address in which '*' matches any run of characters
// other than '/' and '@', and '?' one such character: "~*/*@lists.example.org"
// matches every list of every owner at lists.example.org.
func NormalizePattern(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	at := strings.LastIndexByte(p, '@')
	if at <= 0 || at == len(p)-1 {
		return "", fmt.Errorf("recipient %q: want local@domain (a pattern may use * and ?)", p)
	}
	if strings.ContainsAny(p, " \t\r\n<>\x00") {
		return "", fmt.Errorf("recipient %q: contains a space, control character or angle bracket", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return "", fmt.Errorf("recipient %q: bad pattern: %w", p, err)
	}
	return p, nil
}

// Match reports whether addr matches the registry entry pattern. Domains,
// and local parts, compare case-insensitively; a subaddress ("list+tag")
// matches an entry for the base address ("list").
func Match(pattern, addr string) bool {
	addr = strings.ToLower(addr)
	pattern = strings.ToLower(pattern)
	if matchOne(pattern, addr) {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	if plus := strings.IndexByte(addr[:max(at, 0)], '+'); plus > 0 {
		return matchOne(pattern, addr[:plus]+addr[at:])
	}
	return false
}

func matchOne(pattern, addr string) bool {
	if !strings.ContainsAny(pattern, "*?[") {
		return pattern == addr
	}
	pl, pd, _ := strings.Cut(pattern, "@")
	al, ad, ok := cutLast(addr)
	if !ok || strings.Contains(pd, "@") || strings.Contains(al, "@") {
		return false
	}
	// path.Match's '*' stops at '/': exactly the owner/list split of
	// "~owner/list" addresses.
	lm, _ := path.Match(pl, al)
	dm, _ := path.Match(pd, ad)
	return lm && dm
}

func cutLast(addr string) (local, domain string, ok bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", "", false
	}
	return addr[:at], addr[at+1:], true
}
