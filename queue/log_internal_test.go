package queue

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The client's messages while Redis is away: the first of each is
// logged, its repeats are counted and logged with the next line after
// repeatEvery, a different message is logged at once.
func TestRedisLoggerRepeats(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	r := &redisLogger{l: slog.New(slog.NewTextHandler(&out, nil)), seen: make(map[string]*repeats), now: func() time.Time { return now }}
	ctx := context.Background()
	for range 10 {
		r.Printf(ctx, "failed to dial %s", "127.0.0.1:1")
		now = now.Add(time.Second)
	}
	r.Printf(ctx, "sentinel: new master addr=%s", "127.0.0.1:2")
	now = now.Add(repeatEvery)
	r.Printf(ctx, "failed to dial %s", "127.0.0.1:1")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		`detail="failed to dial 127.0.0.1:1"`,
		`detail="sentinel: new master addr=127.0.0.1:2"`,
		`detail="failed to dial 127.0.0.1:1" repeated=9`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %q, want it to end with %q", i+1, lines[i], w)
		}
	}
}
