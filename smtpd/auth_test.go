package smtpd_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mxq/smtpd/msgauth"
)

// startDNS serves a few TXT records on loopback. The checks themselves are
// tested against a real named in package msgauth; this server only gives
// the receiver's policy something to act on.
func startDNS(t *testing.T, txt map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if v, ok := txt[strings.ToLower(q.Name)]; ok && q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
		} else if !ok {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func checker(t *testing.T, resolver string) *msgauth.Checker {
	t.Helper()
	r, err := msgauth.NewResolver(resolver, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ac := msgauth.Defaults()
	ac.AuthservID, ac.Resolver, ac.Timeout = domain, r, 3*time.Second
	c, err := msgauth.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthenticationResults(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ns := startDNS(t, map[string]string{
		"ed._domainkey.soft.example.": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
		"strict.example.":             "v=spf1 -all",
		"_dmarc.strict.example.":      "v=DMARC1; p=reject",
		"soft.example.":               "v=spf1 ip4:127.0.0.1 -all",
		"_dmarc.soft.example.":        "v=DMARC1; p=none",
		"badrec.example.":             "v=spf1 ip4:127.0.0.1 -all",
		"_dmarc.badrec.example.":      "v=DMARC1; p=bogus",
	})
	forged := "Authentication-Results: " + domain + "; dkim=pass header.d=paypal.com\r\n" +
		"Authentication-Results: other.example; spf=pass\r\n"
	msg := func(from string) string {
		return forged + "From: <a@" + from + ">\r\nSubject: auth\r\nMessage-ID: <" + from + "@x>\r\n\r\nhi\r\n"
	}
	t.Run("recorded", func(t *testing.T) {
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.Auth, c.AuthservID = checker(t, ns), domain })
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		got := c.SendMail("a@soft.example", []string{listAddr}, msg("soft.example"))
		id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
		if !ok {
			t.Fatalf("got %q", got)
		}
		body := e.body(id)
		if n := strings.Count(body, "Authentication-Results: "+domain); n != 1 {
			t.Errorf("%d Authentication-Results with our id, want exactly ours:\n%s", n, body)
		}
		if !strings.Contains(body, "spf=pass smtp.mailfrom=a@soft.example") || !strings.Contains(body, "dmarc=pass") {
			t.Errorf("our header lacks spf=pass / dmarc=pass:\n%s", body)
		}
		if strings.Contains(body, "header.d=paypal.com") {
			t.Errorf("forged header kept:\n%s", body)
		}
		if !strings.Contains(body, "Authentication-Results: other.example; spf=pass") {
			t.Errorf("another server's header was removed:\n%s", body)
		}
		recs, _ := e.q.Peek(context.Background(), 1)
		if a := recs[0].Auth; a == nil || a.SPF != "pass" || a.DMARC != "pass" || a.DKIM != "none" || a.FromDomain != "soft.example" {
			t.Errorf("record auth = %+v", recs[0].Auth)
		}
		// p=reject failures are recorded, not refused, by default.
		if got := c.SendMail("a@strict.example", []string{listAddr}, msg("strict.example")); !strings.HasPrefix(got, "250") {
			t.Errorf("DMARC fail without dmarc_reject: %q", got)
		}
	})
	t.Run("dmarc reject", func(t *testing.T) {
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
			c.Auth, c.AuthservID, c.DMARCReject = checker(t, ns), domain, true
		})
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		if got := c.SendMail("a@strict.example", []string{listAddr}, msg("strict.example")); !strings.HasPrefix(got, "550 5.7.1") {
			t.Errorf("DMARC p=reject failure: %q, want 550 5.7.1", got)
		}
		if got := c.SendMail("a@soft.example", []string{listAddr}, msg("soft.example")); !strings.HasPrefix(got, "250") {
			t.Errorf("DMARC pass: %q", got)
		}
	})
	t.Run("dmarc reject without one author domain", func(t *testing.T) {
		// RFC 7489 §6.6.1: several From fields, addresses of several
		// domains or an unparsable From leave DMARC permerror, which
		// must not be a way around dmarc_reject.
		body := func(from string) string {
			return from + "Subject: from\r\n\r\nhi\r\n"
		}
		for _, reject := range []bool{false, true} {
			e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
				c.Auth, c.AuthservID, c.DMARCReject = checker(t, ns), domain, reject
			})
			c, _ := dial(t, e.addr)
			c.Expect("EHLO client.example.com", "250")
			for _, tt := range []struct{ name, from, want string }{
				{"two From fields", "From: <a@soft.example>\r\nFrom: <a@strict.example>\r\n", "550 5.7.1"},
				{"two domains", "From: <a@soft.example>, <b@strict.example>\r\n", "550 5.7.1"},
				{"unparsable", "From: a@soft.example <b@strict.example\r\n", "550 5.7.1"},
				{"no domain", "From: postmaster\r\n", "550 5.7.1"},
				{"two addresses of one domain", "From: <a@soft.example>, <b@soft.example>\r\n", "250"},
				// A broken record is the domain's permerror, not the
				// message's: DMARC is not applied (§6.6.3).
				{"broken dmarc record", "From: <a@badrec.example>\r\n", "250"},
			} {
				want := tt.want
				if !reject {
					want = "250"
				}
				if got := c.SendMail("a@soft.example", []string{listAddr}, body(tt.from)); !strings.HasPrefix(got, want) {
					t.Errorf("dmarc_reject %v, %s: %q, want %s", reject, tt.name, got, want)
				}
			}
		}
	})
	t.Run("dkim hash bomb", func(t *testing.T) {
		// One signature listing X-A 40,000 times over 40,000 X-A fields,
		// with the right body hash and a published key: go-msgauth alone
		// spends a minute of CPU on it. The caps make it permerror.
		const n = 40000
		body := "hi\r\n"
		bh := sha256.Sum256([]byte(body))
		msg := "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=soft.example; s=ed;\r\n" +
			"\th=" + strings.Repeat(strings.Repeat("x-a:", 400)+"\r\n\t", n/400) + // under the line limit
			"from; bh=" + base64.StdEncoding.EncodeToString(bh[:]) +
			";\r\n\tb=" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\r\n" +
			strings.Repeat("X-A: a\r\n", n) + "From: <a@soft.example>\r\nSubject: bomb\r\n\r\n" + body
		// About 480 kB of header: over the default max_header_bytes,
		// which an operator may raise.
		e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
			c.Auth, c.AuthservID, c.MaxHeaderBytes = checker(t, ns), domain, 1<<20
		})
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		if got := c.SendMail("a@soft.example", []string{listAddr}, msg); !strings.HasPrefix(got, "250") {
			t.Fatalf("got %q, want 250", got)
		}
		recs, _ := e.q.Peek(context.Background(), 1)
		if a := recs[0].Auth; a == nil || a.DKIM != "permerror" || a.SPF != "pass" {
			t.Errorf("record auth = %+v, want dkim permerror, spf pass", a)
		}
	})
	t.Run("dns down", func(t *testing.T) {
		dead, _ := net.ListenPacket("udp", "127.0.0.1:0") // answers nothing
		defer dead.Close()
		for _, tempfail := range []bool{false, true} {
			e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
				c.Auth, c.AuthservID, c.TempFailDNS = checker(t, dead.LocalAddr().String()), domain, tempfail
			})
			c, _ := dial(t, e.addr)
			c.Expect("EHLO client.example.com", "250")
			got := c.SendMail("a@soft.example", []string{listAddr}, msg("soft.example"))
			switch {
			case tempfail && !strings.HasPrefix(got, "451 4.4.3"):
				t.Errorf("DNS down with tempfail: %q, want 451 4.4.3", got)
			case !tempfail && !strings.HasPrefix(got, "250"):
				t.Errorf("DNS down, record only: %q, want 250", got)
			case !tempfail:
				recs, _ := e.q.Peek(context.Background(), 1)
				if a := recs[0].Auth; a == nil || a.SPF != "temperror" {
					t.Errorf("record auth = %+v, want spf temperror", a)
				}
			}
		}
	})
}
