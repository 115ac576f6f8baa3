package dnstest

import (
	"context"
	"testing"
)

func TestStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *Servers
		n     int
	}{
		{"bind", StartBIND, 3},
		{"knot", StartKnot, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.start(t)
			if got := len(s.All()); got != tc.n {
				t.Fatalf("got %d servers, want %d", got, tc.n)
			}
			for _, srv := range s.All() {
				serial, ok := srv.SOA(context.Background())
				if !ok || serial != 1 {
					t.Errorf("%s: serial %d, authoritative %v; want 1, true", srv.Name, serial, ok)
				}
			}
		})
	}
}

// Every server of the signed setup serves the primary's DNSKEY.
func TestStartSigned(t *testing.T) {
	s := StartBINDSigned(t)
	want, err := s.Primary.DNSKEY(context.Background())
	if err != nil || len(want) == 0 {
		t.Fatalf("primary DNSKEY: %v, %d keys", err, len(want))
	}
	for _, srv := range s.Secondaries {
		got, err := srv.DNSKEY(context.Background())
		if err != nil || len(got) != len(want) || got[0].PublicKey != want[0].PublicKey {
			t.Errorf("%s: DNSKEY %v, %v; want the primary's", srv.Name, got, err)
		}
	}
}
