package smtpd

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// value is the value of the counter or gauge c.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := mfs[0].GetMetric()[0]
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                      { return c.t }
func (c *fakeClock) add(d time.Duration)                 { c.t = c.t.Add(d) }
func (c *fakeClock) set(from time.Time, d time.Duration) { c.t = from.Add(d) }

// newTestTable is a rate table over a minute with the message limit and
// the bound on clients given, on a clock of its own.
func newTestTable(t *testing.T, limit, maxClients int) (*rateTable, *fakeClock) {
	t.Helper()
	cfg := testConfig()
	cfg.MessageRateLimit, cfg.MaxRateClients = limit, maxClients
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	rt := newRateTable(&cfg, newLimitMetrics(nil))
	rt.now = clock.now
	return rt, clock
}

// allowed counts how many of n events rt lets through for client.
func allowed(rt *rateTable, client netip.Addr, n int) int {
	got := 0
	for range n {
		if rt.allow(client, rateMessage) {
			got++
		}
	}
	return got
}

// The window slides: a client at its limit gets room back as the minute
// of its events passes, in proportion, and all of it after a minute of
// nothing. Other clients and other kinds of events are counted apart.
func TestRateTableSlides(t *testing.T) {
	rt, clock := newTestTable(t, 10, Defaults().MaxRateClients)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	start := clock.t
	steps := []struct {
		at    time.Duration
		tries int
		want  int
	}{
		{0, 15, 10},                // the limit, not more
		{30 * time.Second, 5, 0},   // the same minute
		{60 * time.Second, 5, 0},   // a new window; the last one still covers it whole
		{90 * time.Second, 10, 5},  // half of the last one left: 5 of 10
		{150 * time.Second, 10, 8}, // half of the last window's 5 still counts
		{150 * time.Second, 1, 0},
		{270 * time.Second, 12, 10}, // two quiet windows: forgotten
	}
	for _, s := range steps {
		clock.set(start, s.at)
		if got := allowed(rt, a, s.tries); got != s.want {
			t.Errorf("at %v: %d of %d let through, want %d", s.at, got, s.tries, s.want)
		}
	}
	if got := allowed(rt, b, 10); got != 10 {
		t.Errorf("another client: %d of 10 let through", got)
	}
	if !rt.allow(a, rateRecipient) || !rt.allow(a, rateConnection) {
		t.Error("recipients or connections refused for a client over its message rate")
	}
	if got := value(t, rt.m.hits.WithLabelValues("message_rate")); got != 5+5+5+5+2+1+2 {
		t.Errorf("message_rate hits %v, want 25", got)
	}
}

// An IPv6 client is its /64: every address in it shares the counts.
func TestRateTableIPv6Prefix(t *testing.T) {
	rt, _ := newTestTable(t, 4, Defaults().MaxRateClients)
	cfg := Config{IPv6PrefixLen: 64}
	for i, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9", "2001:db8:1:2::ab"} {
		if !rt.allow(cfg.clientKey(netip.MustParseAddr(a)), rateMessage) {
			t.Fatalf("event %d refused", i+1)
		}
	}
	if rt.allow(cfg.clientKey(netip.MustParseAddr("2001:db8:1:2::5")), rateMessage) {
		t.Error("a fifth address of the same /64 let through")
	}
	if !rt.allow(cfg.clientKey(netip.MustParseAddr("2001:db8:1:3::1")), rateMessage) {
		t.Error("the next /64 refused")
	}
}

// A client's entry is gone two windows after it was last let through,
// and a million clients in one window leave at most MaxRateClients
// entries: the rest are let through uncounted.
func TestRateTableBounded(t *testing.T) {
	rt, clock := newTestTable(t, Defaults().MessageRateLimit, Defaults().MaxRateClients)
	for i := range 1000 {
		rt.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), rateMessage)
	}
	if got := rt.clients(); got != 1000 {
		t.Fatalf("%d clients held, want 1000", got)
	}
	clock.add(61 * time.Second)
	if got := rt.clients(); got != 1000 {
		t.Errorf("a window later: %d clients held, want 1000 (they still count)", got)
	}
	clock.add(60 * time.Second)
	if got := rt.clients(); got != 0 {
		t.Errorf("two windows later: %d clients held, want 0", got)
	}
	if got := value(t, rt.m.clients); got != 0 {
		t.Errorf("mxd_limit_clients %v, want 0", got)
	}

	const max, n = 10000, 1_000_000
	rt, _ = newTestTable(t, Defaults().MessageRateLimit, max)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		rt.allow(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(i >> 16), 7: byte(i >> 8), 8: byte(i)}), rateMessage)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := rt.clients(); got != max {
		t.Errorf("%d clients held after %d, want %d", got, n, max)
	}
	if got := value(t, rt.m.untracked); got != n-max {
		t.Errorf("untracked %v, want %d", got, n-max)
	}
	t.Logf("%d clients: %d bytes of heap (%.0f a client)", max, int64(after.HeapAlloc)-int64(before.HeapAlloc),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/max)
}

// Negative is off, zero is refused; off lets everything through and
// keeps nothing.
func TestLimitsOff(t *testing.T) {
	cfg := testConfig()
	cfg.ConnectionRateLimit, cfg.MessageRateLimit, cfg.RecipientRateLimit = -1, -1, -1
	cfg.SoftErrorLimit, cfg.HardErrorLimit, cfg.ErrorSleepTime = -1, -1, -1
	if err := cfg.Check(); err != nil {
		t.Errorf("off limits refused: %v", err)
	}
	zero := testConfig()
	zero.MessageRateLimit = 0
	if err := zero.Check(); err == nil || !strings.Contains(err.Error(), "MessageRateLimit 0: want more than 0, or -1 for off") {
		t.Errorf("Check of a zero limit = %v, want it refused", err)
	}
	rt := newRateTable(&cfg, newLimitMetrics(nil))
	a := netip.MustParseAddr("192.0.2.1")
	for k := range numRates {
		for range 100000 {
			if !rt.allow(a, k) {
				t.Fatalf("%s refused while off", hitName[k])
			}
		}
	}
	if got := rt.clients(); got != 0 {
		t.Errorf("%d clients kept while off", got)
	}
}

// What counts as an error: the client's, not mxd's.
func TestCountsAsError(t *testing.T) {
	for _, tt := range []struct {
		r    *smtp.SMTPError
		want bool
	}{
		{replyNoSuchUser, true},
		{replyRelayDenied, true},
		{replyNeedUTF8, true},
		{&smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}}, true}, // unknown command
		{&smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}}, true}, // syntax
		{&smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1}}, true}, // sequence
		{replyMessageRate, true},
		{replyRecipientRate, true},
		{replyTooBig, true},
		{replyQueueDown, false},
		{replyQueueOOM, false},
		{replyNoMemory, false},
		{replyTooManyRcpts, false},
		{replyShutdown, false},
		{replyTooManyErrors, false},
		{replyDataTimeout, false},
		{replyDuplicateRcpt, false},
		{&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}}, false},
		{&smtp.SMTPError{Code: 354, EnhancedCode: smtp.NoEnhancedCode}, false},
	} {
		if got := countsAsError(tt.r.Code, tt.r.EnhancedCode); got != tt.want {
			t.Errorf("%d %v %q: counts %v, want %v", tt.r.Code, tt.r.EnhancedCode, tt.r.Message, got, tt.want)
		}
	}
}

// The cost of counting one event, among 100,000 clients.
//
//	go test -run '^$' -bench RateTableAllow ./smtpd/
func BenchmarkRateTableAllow(b *testing.B) {
	cfg := testConfig()
	cfg.RecipientRateLimit = 1 << 30
	rt := newRateTable(&cfg, newLimitMetrics(nil))
	clients := make([]netip.Addr, 100000)
	for i := range clients {
		clients[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	b.ResetTimer()
	for i := range b.N {
		rt.allow(clients[i%len(clients)], rateRecipient)
	}
}
