package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// benchCert is a self-signed ECDSA P-256 certificate for 127.0.0.1, like
// the bench's own.
func benchCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		DNSNames:     []string{"sink.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestStartTLS(t *testing.T) {
	cert := benchCert(t)
	for _, tc := range []struct {
		version uint16
		resume  bool
	}{
		{tls.VersionTLS13, false},
		{tls.VersionTLS13, true},
		{tls.VersionTLS12, false},
		{tls.VersionTLS12, true},
	} {
		name := tls.VersionName(tc.version) + " resume " + strconv.FormatBool(tc.resume)
		t.Run(name, func(t *testing.T) {
			be := &sink{}
			addr := startTLSSink(t, be, true, &tls.Config{
				Certificates: []tls.Certificate{cert},
				MaxVersion:   tc.version,
			})
			args := []string{"-server", addr, "-n", "6", "-c", "1", "-per-conn", "1", "-size", "2048",
				"-progress", "0", "-starttls", "-tls-verify=false"}
			if tc.resume {
				args = append(args, "-tls-resume")
			}
			var res loadResult
			runJSON(t, &res, args...)

			if diff := cmp.Diff(counts{"data-end 250": 6}, res.Codes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
			if res.Connects != 6 {
				t.Errorf("%d connections, want 6 (-per-conn 1)", res.Connects)
			}
			// One session at a time: each connection finds the previous
			// one's session in the cache.
			want := &tlsCounts{Handshakes: 6, Full: 6, Versions: counts{tls.VersionName(tc.version): 6}}
			if tc.resume {
				want.Full, want.Resumed = 1, 5
			}
			if diff := cmp.Diff(want, res.TLS); diff != "" {
				t.Errorf("tls (-want +got):\n%s", diff)
			}
			if res.Connection == nil || res.Connection.N != 6 || res.Connection.Min <= 0 {
				t.Errorf("connection latency %+v, want 6 connections measured", res.Connection)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			for i, m := range be.msgs {
				if !m.tls {
					t.Errorf("message %d arrived without TLS", i)
				}
			}
			if len(be.msgs) != 6 {
				t.Errorf("server received %d messages, want 6", len(be.msgs))
			}
		})
	}
}

// TestStartTLSConcurrent runs one message per connection over several
// sessions at once, resuming and from several source addresses.
func TestStartTLSConcurrent(t *testing.T) {
	be := &sink{}
	addr := startTLSSink(t, be, true, &tls.Config{Certificates: []tls.Certificate{benchCert(t)}})
	var res loadResult
	runJSON(t, &res, "-server", addr, "-n", "24", "-c", "4", "-per-conn", "1", "-size", "2048", "-progress", "0",
		"-starttls", "-tls-verify=false", "-tls-resume", "-source", "127.0.0.2-127.0.0.4,127.0.0.9")

	if res.Accepted != 24 || res.Connects != 24 {
		t.Errorf("accepted %d over %d connections, want 24 over 24", res.Accepted, res.Connects)
	}
	if res.TLS == nil || res.TLS.Handshakes != 24 || res.TLS.Full+res.TLS.Resumed != 24 || res.TLS.Resumed == 0 {
		t.Errorf("tls %+v, want 24 handshakes, some resumed", res.TLS)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	got := slices.Sorted(func(yield func(string) bool) {
		for ip := range be.remotes {
			if !yield(ip) {
				return
			}
		}
	})
	if diff := cmp.Diff([]string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"}, got); diff != "" {
		t.Errorf("client addresses seen by the server (-want +got):\n%s", diff)
	}
}

func TestStartTLSFailures(t *testing.T) {
	cert := benchCert(t)
	for _, tc := range []struct {
		name string
		tls  *tls.Config // the server's; nil offers no STARTTLS
		args []string
		want counts
	}{
		{"not offered", nil, []string{"-tls-verify=false"}, counts{"starttls not-offered": 2}},
		{"self-signed, verified", &tls.Config{Certificates: []tls.Certificate{cert}}, nil, counts{"error tls": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &sink{}
			addr := startTLSSink(t, be, true, tc.tls)
			var res loadResult
			runJSON(t, &res, append([]string{"-server", addr, "-n", "2", "-c", "1", "-progress", "0", "-starttls"}, tc.args...)...)
			if diff := cmp.Diff(tc.want, res.Codes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
			if res.Accepted != 0 || len(be.msgs) != 0 {
				t.Errorf("accepted %d, server received %d; want none", res.Accepted, len(be.msgs))
			}
		})
	}
}

func TestParseSources(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		in   string
		want []netip.Addr
	}{
		{"127.0.0.2", addrs("127.0.0.2")},
		{"127.0.0.2-127.0.0.4", addrs("127.0.0.2", "127.0.0.3", "127.0.0.4")},
		{"127.0.0.7-127.0.0.7", addrs("127.0.0.7")},
		{"127.0.0.2, ::1,127.1.2.253-127.1.2.255", addrs("127.0.0.2", "::1", "127.1.2.253", "127.1.2.254", "127.1.2.255")},
		{"::ffff:127.0.0.3", addrs("127.0.0.3")},
	} {
		got, err := parseSources(tc.in)
		if err != nil {
			t.Errorf("parseSources(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("parseSources(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	got, _ := parseSources("127.0.0.2-127.0.0.254")
	if len(got) != 253 {
		t.Errorf("127.0.0.2-127.0.0.254: %d addresses, want 253", len(got))
	}

	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1", "not a loopback"},
		{"127.0.0.2,192.168.1.1", "192.168.1.1 is not a loopback"},
		{"127.0.0.2-10.0.0.3", "not a loopback"},
		{"127.0.0.5-127.0.0.2", "one /24"},
		{"127.0.0.2-127.0.1.3", "one /24"},
		{"::1-::1", "one /24"},
		{"localhost", "not an IP address"},
		{",", "no address"},
	} {
		_, err := parseSources(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSources(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-source", "10.1.2.3"}, "-source: 10.1.2.3 is not a loopback address"},
		{[]string{"-source", "127.0.0.9-127.0.0.3"}, "-source:"},
		{[]string{"-tls-resume"}, "need -starttls"},
		{[]string{"-tls-verify=false"}, "need -starttls"},
		{[]string{"-tls-server-name", "mx.example.org"}, "need -starttls"},
		{[]string{"-starttls", "-server", "no-port"}, "-server"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}

	load, _, _, _, err := parseArgs([]string{"-server", "127.0.0.1:25", "-starttls", "-tls-resume"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := load.dial.tls; c == nil || c.ServerName != "127.0.0.1" || c.InsecureSkipVerify || c.ClientSessionCache == nil {
		t.Errorf("-starttls -tls-resume: tls config %+v, want ServerName 127.0.0.1, verified, with a session cache", c)
	}
	load, _, _, _, err = parseArgs([]string{"-starttls", "-tls-verify=false", "-tls-server-name", "mx.example.org"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := load.dial.tls; c == nil || c.ServerName != "mx.example.org" || !c.InsecureSkipVerify || c.ClientSessionCache != nil {
		t.Errorf("-tls-server-name: tls config %+v, want ServerName mx.example.org, unverified, no session cache", c)
	}
}
