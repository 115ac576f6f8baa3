package msgauth

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkCheck measures Check of one RSA-2048-signed message that passes
// SPF, DKIM, DMARC and iprev against a real named, and as its reference a
// bare UDP query to the same named in the same process. The check reports
// the DNS queries it sent per message and its time in bare queries.
func BenchmarkCheck(b *testing.B) {
	e := newEnv(b, Config{})
	ctx := context.Background()
	in := signed("a@example.test", "a@example.test", nil, "example.test", "rsa")(b, e)
	if res := e.checker.Check(ctx, in); res.DMARC != Pass || res.DKIM != Pass || res.SPF != Pass || res.IPRev != Pass {
		b.Fatalf("not a passing message:\n%s", res.Header)
	}
	bare := func() {
		if _, err := query(ctx, e.dns.Addr, "rsa._domainkey.example.test", dns.TypeTXT); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("check", func(b *testing.B) {
		const refN = 200
		start := time.Now()
		for range refN {
			bare()
		}
		ref := time.Since(start) / refN
		q0 := e.checker.resolver.queries.Load()
		for b.Loop() {
			e.checker.Check(ctx, in)
		}
		b.ReportMetric(float64(e.checker.resolver.queries.Load()-q0)/float64(b.N), "queries/op")
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(ref), "bare-queries/op")
	})
	b.Run("bare-query", func(b *testing.B) {
		for b.Loop() {
			bare()
		}
	})
}
