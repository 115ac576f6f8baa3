package smtpd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mxq/queue"
)

// fakeRegistry counts reads and can fail; a fake because the timing of
// refreshes is what is tested, with an injected clock.
type fakeRegistry struct {
	mu      sync.Mutex
	entries []string
	reads   int
	fail    bool
}

func (f *fakeRegistry) Registry(context.Context) ([]queue.RegistryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.fail {
		return nil, errors.New("redis down")
	}
	var out []queue.RegistryEntry
	for _, e := range f.entries {
		out = append(out, queue.RegistryEntry{Pattern: e})
	}
	return out, nil
}

func (f *fakeRegistry) set(entries []string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.fail = entries, fail
}

func TestRecipientsRefresh(t *testing.T) {
	reg := &fakeRegistry{entries: []string{"old@lists.example.org"}}
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	r := NewRecipients(reg, 5*time.Second)
	r.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	ctx := context.Background()
	known := func(addr string) bool {
		t.Helper()
		ok, err := r.Known(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	if !known("old@lists.example.org") {
		t.Fatal("first copy not used")
	}
	reg.set([]string{"new@lists.example.org"}, false)
	// Stale within 2×ttl: answered from the copy, refreshed behind.
	advance(6 * time.Second)
	if !known("old@lists.example.org") {
		t.Error("stale copy not used while refreshing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !known("new@lists.example.org") {
		if time.Now().After(deadline) {
			t.Fatal("background refresh never replaced the copy")
		}
		time.Sleep(time.Millisecond)
	}
	// After a quiet spell the copy is fetched again before answering.
	reg.set([]string{"newer@lists.example.org"}, false)
	advance(time.Minute)
	if !known("newer@lists.example.org") {
		t.Error("an old copy answered after a quiet spell")
	}
	// Redis away: the old copy still answers.
	reg.set(nil, true)
	advance(time.Minute)
	if !known("newer@lists.example.org") {
		t.Error("copy not used while the registry cannot be read")
	}
}
