package lists

import (
	"context"
	"errors"
	"fmt"

	"mxq/address"
)

// Destination hands a message to list software for one recipient. It
// returns nil once the recipient has the message, an error marked
// Permanent when the recipient can never get it, any other error when a
// later attempt may succeed.
type Destination interface {
	Deliver(ctx context.Context, m *Message, rcpt string) error
	String() string
}

// BatchDestination is a Destination that can take several recipients in
// one transaction (LMTP, SMTP). It returns one error per recipient, in
// order.
type BatchDestination interface {
	Destination
	DeliverBatch(ctx context.Context, m *Message, rcpts []string) []error
}

// Route sends the recipients that match Match to To.
type Route struct {
	// Match is an address or pattern, as address.Match reads it:
	// "~*/*@lists.example.org", "u.*.*@lists.example.org",
	// "announce@lists.example.org" (which also matches
	// "announce+subscribe@…"). The case of ASCII letters does not matter.
	Match string
	To    Destination
}

// Router is a Handler that delivers each recipient to the first route it
// matches. A recipient that matches no route is rejected for good: mail
// is never dropped silently.
type Router struct {
	Routes []Route
}

// Patterns returns the routes' patterns, for the recipient registry.
func (r *Router) Patterns() []string {
	out := make([]string, len(r.Routes))
	for i, rt := range r.Routes {
		out[i] = rt.Match
	}
	return out
}

// Lookup returns the index of the route for addr, or -1.
func (r *Router) Lookup(addr string) int {
	for i, rt := range r.Routes {
		if address.Match(rt.Match, addr) {
			return i
		}
	}
	return -1
}

// errNoRoute is the reason for a recipient that matches no route.
var errNoRoute = errors.New("no route matches this recipient (listd's [[route]] tables)")

// Deliver delivers m to its pending recipients, destination by
// destination, and records each recipient's result as soon as it is known.
// It returns a TemporaryError when some recipient failed temporarily, a
// PermanentError when some were rejected and none failed temporarily.
func (r *Router) Deliver(ctx context.Context, m *Message) error {
	groups := make(map[int][]string)
	var order []int
	for _, rc := range m.Pending() {
		i := r.Lookup(rc.Addr)
		if i < 0 {
			if err := m.Reject(ctx, rc.Addr, errNoRoute); err != nil {
				return Temporary(err)
			}
			continue
		}
		if _, ok := groups[i]; !ok {
			order = append(order, i)
		}
		groups[i] = append(groups[i], rc.Addr)
	}
	var temp []error
	for _, i := range order {
		rcpts, dest := groups[i], r.Routes[i].To
		if b, ok := dest.(BatchDestination); ok && len(rcpts) > 1 {
			errs := b.DeliverBatch(ctx, m, rcpts)
			for j, rc := range rcpts {
				if err := r.record(ctx, m, dest, rc, errs[j]); err != nil {
					temp = append(temp, err)
				}
			}
			continue
		}
		for _, rc := range rcpts {
			if err := r.record(ctx, m, dest, rc, dest.Deliver(ctx, m, rc)); err != nil {
				temp = append(temp, err)
			}
		}
	}
	if len(temp) > 0 {
		return Temporary(errors.Join(temp...))
	}
	if rej := m.d.Rejected(); len(rej) > 0 {
		return Permanent(rejections(rej))
	}
	return nil
}

// record stores the result of one recipient and returns the error that
// makes the message be retried, if any.
func (r *Router) record(ctx context.Context, m *Message, dest Destination, rcpt string, err error) error {
	switch {
	case err == nil:
		if serr := m.Delivered(ctx, rcpt); serr != nil {
			return serr
		}
		return nil
	case IsPermanent(err):
		if serr := m.Reject(ctx, rcpt, fmt.Errorf("%s: %w", dest, err)); serr != nil {
			return serr
		}
		return nil
	default:
		return fmt.Errorf("<%s> via %s: %w", rcpt, dest, err)
	}
}
