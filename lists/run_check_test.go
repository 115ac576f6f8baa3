package lists_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mxq/lists"
)

// Run takes a Consumer's settings as they are: a zero that once meant
// the default is refused, with every other problem, before any work.
func TestRunRefusesSettings(t *testing.T) {
	c := lists.NewConsumer(nil, nil)
	c.Concurrency, c.Grace = 0, -time.Second
	err := c.Run(context.Background())
	for _, want := range []string{"Source is required", "Handler is required", "Concurrency 0: want more than 0", "Grace -1s: want more than 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want it to say %q", err, want)
		}
	}
}
