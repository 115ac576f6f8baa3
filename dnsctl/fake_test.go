package dnsctl_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mxq/dnsctl"
)

// fakePrimary serves UPDATEs on a loopback TCP listener with handler; its
// TSIG secret for key name is secret (empty: the server knows no key).
func fakePrimary(t *testing.T, name, secret string, handler dns.HandlerFunc) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The default MsgAcceptFunc answers UPDATE with NOTIMP.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	srv := &dns.Server{Listener: l, Handler: handler, MsgAcceptFunc: accept}
	if secret != "" {
		srv.TsigSecret = map[string]string{name: secret}
	}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return l.Addr().String()
}

// TestUntrustedReply checks that a NOERROR is success only when the reply
// carries a TSIG that verifies with our key.
func TestUntrustedReply(t *testing.T) {
	const name = "mxq-test."
	secret := "9R72ekJjX8uAugNL1Z4GWEhDn27wNXK5P7vIboMvytA="
	wrong := "GOHttP6IVehmJH7Yic66XBALmw3oPvLEDXWIe7LaQOQ="
	signed := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if t := r.IsTsig(); t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		w.WriteMsg(m)
	}
	unsigned := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	}
	otherID := func(w dns.ResponseWriter, r *dns.Msg) {
		r.Id++
		signed(w, r)
	}
	for _, tc := range []struct {
		name    string
		secret  string
		handler dns.HandlerFunc
		trusted bool
		reason  string // in the error
	}{
		{"signed with our key", secret, signed, true, ""},
		{"unsigned NOERROR", "", unsigned, false, "reply (rcode NOERROR) carries no TSIG"},
		{"unsigned NOERROR from a server that knows the key", secret, unsigned, false, "reply (rcode NOERROR) carries no TSIG"},
		{"signed with another secret", wrong, signed, false, "does not verify"},
		{"signed reply to another id", secret, otherID, false, "id does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := &dnsctl.Zone{Name: "example.org.", Timeout: time.Second,
				Primary: fakePrimary(t, name, tc.secret, tc.handler),
				Key:     &dnsctl.Key{Name: name, Algorithm: dns.HmacSHA256, Secret: secret}}
			_, err := z.Remove(context.Background(), original, "mx2.example.org.", 1)
			var untrusted *dnsctl.UntrustedError
			switch {
			case tc.trusted && err != nil:
				t.Fatalf("got %v, want success", err)
			case !tc.trusted && !errors.As(err, &untrusted):
				t.Fatalf("got %v, want an *UntrustedError", err)
			case !tc.trusted && !strings.Contains(err.Error(), tc.reason):
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			t.Logf("%v", err)
		})
	}
}
