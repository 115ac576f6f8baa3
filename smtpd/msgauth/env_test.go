package msgauth

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// authservID is the authserv-id of every test Checker.
const authservID = "mx.lists.test"

// env is a named serving the test zones, the keys published in them and a
// Checker that asks that named.
type env struct {
	dns     *named
	rsaKey  *rsa.PrivateKey
	edKey   ed25519.PrivateKey
	checker *Checker
}

// The zones, for a client at 127.0.0.2 whose PTR is mail.example.test:
//
//	example.test     SPF pass for 127.0.0.2; fail, softfail, neutral, none,
//	                 include, limit (11 lookups), void (3 void lookups),
//	                 tempinc (includes the broken zone), multiple records;
//	                 DKIM keys rsa, ed, revoked; DMARC p=reject sp=quarantine
//	strict.test      SPF pass; DMARC p=reject aspf=s
//	monitor.test     SPF pass; DMARC p=none
//	nodmarc.test     SPF pass; no DMARC record
//	badrec.test      SPF pass; a DMARC record with a syntax error
//	broken.test      served by nobody: SERVFAIL
//	0.0.127.in-addr.arpa    PTRs: .2 pass, .3 fail, .4 none, .5 temperror
//	                        forward, .7 pass on the second name
//	6.0.0.127.in-addr.arpa  served by nobody: SERVFAIL
func testZones(rsaPub, edPub string) zoneSet {
	pass := `@ TXT "v=spf1 ip4:127.0.0.2 -all"`
	keys := []string{
		"rsa._domainkey TXT " + txt("v=DKIM1; k=rsa; p="+rsaPub),
		"ed._domainkey TXT " + txt("v=DKIM1; k=ed25519; p="+edPub),
	}
	limit := []string{}
	for i := 1; i <= 11; i++ {
		limit = append(limit, fmt.Sprintf("a:l%d.example.test", i))
	}
	example := append([]string{
		pass,
		`mail A 127.0.0.2`,
		`mail TXT "v=spf1 a -all"`,
		`fail TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`softfail TXT "v=spf1 ip4:192.0.2.1 ~all"`,
		`neutral TXT "v=spf1 ?all"`,
		`nospf A 127.0.0.2`,
		`include TXT "v=spf1 include:_spf.example.test -all"`,
		`_spf TXT "v=spf1 ip4:127.0.0.0/24 -all"`,
		`limit TXT "v=spf1 ` + strings.Join(limit, " ") + ` -all"`,
		`void TXT "v=spf1 a:nx1.example.test a:nx2.example.test a:nx3.example.test ip4:127.0.0.2 -all"`,
		`tempinc TXT "v=spf1 include:broken.test -all"`,
		`multiple TXT "v=spf1 ip4:127.0.0.2 -all"`,
		`multiple TXT "v=spf1 -all"`,
		`revoked._domainkey TXT "v=DKIM1; k=rsa; p="`,
		`_dmarc TXT "v=DMARC1; p=reject; sp=quarantine"`,
		`liar A 192.0.2.3`,
		`mail7 A 127.0.0.7`,
		`cname CNAME mail.example.test.`,
		`split TXT "v=spf1 " "ip4:127.0.0.2 " "-all"`,
	}, keys...)
	for i := 1; i <= 11; i++ {
		example = append(example, fmt.Sprintf("l%d A 192.0.2.%d", i, i))
	}
	for i := range 8 {
		example = append(example, fmt.Sprintf("big TXT %q", strings.Repeat(string(rune('a'+i)), 250)))
	}
	return zoneSet{
		primary: map[string][]string{
			"example.test": example,
			"strict.test": append([]string{pass, `mail TXT "v=spf1 ip4:127.0.0.2 -all"`,
				`_dmarc TXT "v=DMARC1; p=reject; aspf=s"`,
				"rsa._domainkey.mail TXT " + txt("v=DKIM1; k=rsa; p="+rsaPub)}, keys...),
			"monitor.test": {pass, `_dmarc TXT "v=DMARC1; p=none"`},
			"nodmarc.test": append([]string{pass}, keys...),
			"badrec.test":  {pass, `_dmarc TXT "v=DMARC1; p=bogus"`},
			"0.0.127.in-addr.arpa": {
				`2 PTR mail.example.test.`,
				`3 PTR liar.example.test.`,
				`5 PTR host.broken.test.`,
				`7 PTR nx.example.test.`,
				`7 PTR mail7.example.test.`,
			},
		},
		broken: []string{"broken.test", "6.0.0.127.in-addr.arpa"},
	}
}

// newEnv generates an RSA-2048 and an Ed25519 key, starts named with the
// test zones and returns a Checker configured by cfg (AuthservID and
// Resolver are filled in).
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{}
	var err error
	if e.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.edKey = edKey
	der, err := x509.MarshalPKIXPublicKey(&e.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	e.dns = startNamed(t, testZones(base64.StdEncoding.EncodeToString(der),
		base64.StdEncoding.EncodeToString(edPub)))
	cfg.AuthservID = authservID
	if cfg.Resolver, err = NewResolver(e.dns.Addr, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if e.checker, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// message returns a plain message from the given From field value.
func message(from string) []byte {
	return []byte("From: " + from + "\r\n" +
		"To: ~owner/list@lists.test\r\n" +
		"Subject: a test\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <1@example.test>\r\n" +
		"\r\n" +
		"Hello, list.\r\n")
}

// sign returns msg with a DKIM-Signature of domain and selector ("rsa"
// uses the RSA key, anything else the Ed25519 key) prepended.
func (e *env) sign(t testing.TB, msg []byte, domain, selector string) []byte {
	t.Helper()
	var signer crypto.Signer = e.edKey
	if selector == "rsa" {
		signer = e.rsaKey
	}
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: selector, Signer: signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
