package msgauth

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/google/go-cmp/cmp"
)

// TestHeaderHostileValues feeds the header values a client controls (HELO,
// MAIL FROM) with line breaks, quotes and backslashes: the field keeps its
// shape and go-msgauth parses it back to the same verdicts.
func TestHeaderHostileValues(t *testing.T) {
	cfg := Defaults()
	cfg.AuthservID, cfg.Resolver = authservID, &Resolver{}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		res  Result
		want []string // the lines
	}{
		{"helo with a line break", Result{SPF: Pass, SPFIdentity: "helo", DKIM: None, DMARC: None, IPRev: Fail,
			HELO: "a.test\r\nAuthentication-Results: mx.lists.test; dkim=pass"}, []string{
			"Authentication-Results: mx.lists.test;",
			"\tiprev=fail policy.iprev=127.0.0.2;",
			"\tspf=pass",
			"\tsmtp.helo=\"a.testAuthentication-Results:mx.lists.testdkim=pass\";",
			"\tdkim=none;",
			"\tdmarc=none",
		}},
		{"quoted local part", Result{SPF: Fail, SPFIdentity: "mailfrom", SPFDomain: "example.test",
			MailFrom: `"a\"; dkim=pass"@example.test`, DKIM: None, DMARC: None, IPRev: Fail}, []string{
			"Authentication-Results: mx.lists.test;",
			"\tiprev=fail policy.iprev=127.0.0.2;",
			"\tspf=fail smtp.mailfrom=example.test;",
			"\tdkim=none;",
			"\tdmarc=none",
		}},
		{"backslash in a signature tag", Result{SPF: None, SPFIdentity: "mailfrom", DKIM: Fail, DMARC: None, IPRev: Fail,
			DKIMSignatures: []DKIMSignature{{Result: Fail, Domain: `ex\ample.test`, Selector: `s"`, Algorithm: "rsa-sha256", B: "abc+/=de"}}},
			[]string{
				"Authentication-Results: mx.lists.test;",
				"\tiprev=fail policy.iprev=127.0.0.2;",
				"\tspf=none;",
				"\tdkim=fail header.a=rsa-sha256 header.b=\"abc+/=de\"",
				"\theader.d=example.test header.s=s;",
				"\tdmarc=none",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := c.header(&tt.res, netip.MustParseAddr("127.0.0.2"))
			if !strings.HasSuffix(h, "\r\n") {
				t.Fatalf("header %q does not end in CRLF", h)
			}
			got := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			_, value, _ := strings.Cut(strings.ReplaceAll(strings.TrimSuffix(h, "\r\n"), "\r\n", ""), ":")
			if id, _, err := authres.Parse(value); err != nil || id != authservID {
				t.Errorf("authres.Parse = %q, %v", id, err)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	r := &Resolver{}
	with := func(f func(*Config)) Config {
		c := Defaults()
		c.AuthservID, c.Resolver = "mx.lists.test", r
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", with(func(*Config) {}), true},
		{"empty id", with(func(c *Config) { c.AuthservID = "" }), false},
		{"id with space", with(func(c *Config) { c.AuthservID = "mx lists" }), false},
		{"id with semicolon", with(func(c *Config) { c.AuthservID = "mx;" }), false},
		{"id with line break", with(func(c *Config) { c.AuthservID = "mx\r\nX: y" }), false},
		{"negative cap", with(func(c *Config) { c.MaxDKIMSignatures = -1 }), false},
		{"zero cap", with(func(c *Config) { c.MaxDKIMSignatures = 0 }), false},
		{"negative timeout", with(func(c *Config) { c.Timeout = -time.Second }), false},
		{"zero timeout", with(func(c *Config) { c.Timeout = 0 }), false},
		{"no resolver", with(func(c *Config) { c.Resolver = nil }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New error = %v, want ok: %v", err, tt.ok)
			}
			if err == nil && (c.maxSigs != DefaultMaxDKIMSignatures || c.timeout != DefaultTimeout) {
				t.Errorf("defaults: cap %d timeout %v", c.maxSigs, c.timeout)
			}
		})
	}
}

// TestCheckTimeout points the Checker at a server that never answers, with
// a per-query timeout far beyond the test's: Config.Timeout alone ends the
// Check, and every lookup-based verdict is temperror.
func TestCheckTimeout(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	r, err := NewResolver(silent.LocalAddr().String(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.AuthservID, cfg.Resolver, cfg.Timeout = authservID, r, 200*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{IP: client, HELO: helo, MailFrom: "a@example.test", Message: message("a@example.test")}
	got := verdictOf(c.Check(context.Background(), in))
	want := verdict{SPF: TempError, DKIM: None, DMARC: TempError, IPRev: TempError, TempError: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
