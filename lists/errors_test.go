package lists_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/lists"
)

// The outermost mark decides; wrapping with fmt.Errorf keeps it.
func TestIsPermanent(t *testing.T) {
	x := errors.New("550 no such list")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unmarked", x, false},
		{"permanent", lists.Permanent(x), true},
		{"temporary", lists.Temporary(x), false},
		{"temporary over permanent", lists.Temporary(lists.Permanent(x)), false},
		{"permanent over temporary", lists.Permanent(lists.Temporary(x)), true},
		{"wrapped permanent", fmt.Errorf("rcpt: %w", lists.Permanent(x)), true},
		{"temporary over wrapped permanent", lists.Temporary(fmt.Errorf("timed out: %w", lists.Permanent(x))), false},
		{"joined, temporary first", errors.Join(lists.Temporary(x), lists.Permanent(x)), false},
		{"joined, permanent first", errors.Join(x, lists.Permanent(x)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lists.IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// A handler that returns a permanent error because its attempt ran out of
// time is retried, not dead-lettered: the consumer's timeout marks the
// error temporary, and that outer mark wins.
func TestTimeoutOverridesPermanent(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var outcomes []lists.Outcome
	h := lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		if m.Attempt > 1 {
			return nil
		}
		<-ctx.Done()
		return lists.Permanent(fmt.Errorf("lmtp: %w", ctx.Err()))
	})
	c := lists.NewConsumer(e.q.Consumer(fastRetries), h)
	c.Concurrency, c.Timeout, c.Grace, c.Logger = 1, 50*time.Millisecond, 5*time.Second, testLogger(t)
	c.Observe = func(r lists.Result) {
		mu.Lock()
		outcomes = append(outcomes, r.Outcome)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	e.put(t, "alice@example.com", "dev@lists.example.org")
	waitFor(t, "delivered or dead-lettered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := len(outcomes)
		return n > 0 && (outcomes[n-1] == lists.Delivered || outcomes[n-1] == lists.Dead)
	})
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]lists.Outcome{lists.Retried, lists.Delivered}, outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}
