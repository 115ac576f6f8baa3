package queue

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"mxq/address"
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
		norm, err := address.NormalizePattern(e)
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
		norm, err := address.NormalizePattern(e)
		if err != nil {
			return err
		}
		members = append(members, norm)
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	k := q.key("rcpt", "routes")
	cmds, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k)
		if len(members) > 0 {
			p.SAdd(ctx, k, members...)
		}
		return nil
	})
	return classify(execErr(cmds, err))
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
