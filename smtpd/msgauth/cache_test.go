package msgauth

import (
	"context"
	"testing"
)

// Answers, "no such record" and, briefly, temporary failures are kept.
func TestResolverCache(t *testing.T) {
	e := newEnv(t, Defaults())
	r := e.checker.resolver
	ctx := context.Background()
	tests := []struct {
		name      string
		wantAgain bool // a second lookup at once sends a query again
	}{
		{"fail.example.test", false},
		{"nx.example.test", false},
		{"broken.test", false},
	}
	for _, tt := range tests {
		r.LookupTXT(ctx, tt.name)
		before := r.queries.Load()
		r.LookupTXT(ctx, tt.name)
		r.LookupTXT(ctx, tt.name)
		if again := r.queries.Load() > before; again != tt.wantAgain {
			t.Errorf("%s: queried again = %v, want %v", tt.name, again, tt.wantAgain)
		}
	}
}
