package smtpd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/internal/smtptest"
	"mxq/smtpd"
)

func TestHostileAddresses(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	tests := []struct{ rcpt, want string }{
		{"<>", "5"},
		{"<@>", "5"},
		{"<a@>", "5"},
		{"< @a>", "5"},
		{"<a@ >", "5"},
		{"<~a/b\x00@" + domain + ">", "553 5.1.3"},
		{"<~a/b@" + domain + ".>", "553 5.1.2"},
		{"<~a/b@lists_example.org>", "553 5.1.2"},
		{"<\"~a/b@evil.example\"@" + domain + ">", "553 5.1.3"},
		{"<~a/b%evil.example@" + domain + ">", "554 5.7.1"},
		{"<evil.example!~a/b@" + domain + ">", "554 5.7.1"},
		{"<@relay.example:~a/b@" + domain + ">", "250"},        // source route, judged by its final domain
		{"<@" + domain + ":victim@evil.example>", "554 5.7.1"}, // ditto
		{"<~ü/b@" + domain + ">", "553 5.6.7"},
	}
	for _, tt := range tests {
		if got := c.Cmd("RCPT TO:" + tt.rcpt); !strings.HasPrefix(got, tt.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tt.rcpt, got, tt.want)
		}
	}
	// Mail FROM with a non-ASCII address needs SMTPUTF8.
	c.Expect("RSET", "250")
	if got := c.Cmd("MAIL FROM:<jürgen@example.de>"); !strings.HasPrefix(got, "553 5.6.7") {
		t.Errorf("non-ASCII MAIL FROM without SMTPUTF8: %q", got)
	}
	// With SMTPUTF8 UTF-8 addresses work end to end.
	c.Expect("MAIL FROM:<jürgen@exämple.de> SMTPUTF8", "250")
	c.Expect("RCPT TO:<~jürgen/liste@"+domain+">", "250")
	c.Expect("DATA", "354")
	c.Send(message("utf8") + ".\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("SMTPUTF8 message: %q", got)
	}
	recs, _ := e.q.Peek(context.Background(), 10)
	if len(recs) != 1 || recs[0].From != "jürgen@exämple.de" || recs[0].Rcpts[0].Addr != "~jürgen/liste@"+domain {
		t.Errorf("records = %+v", recs)
	}
}

func TestHostileInput(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxHeaderBytes = 4096 })
	t.Run("overlong command line", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		if got := c.Cmd("EHLO " + strings.Repeat("a", 5000)); !strings.HasPrefix(got, "500 5.4.0") {
			t.Errorf("got %q, want 500 5.4.0", got)
		}
		if got := c.Read(); got != "" && !strings.Contains(got, "reset") {
			t.Errorf("after overlong line: %q, want the connection closed", got)
		}
	})
	t.Run("header too large", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		got := c.SendMail("a@example.com", []string{listAddr}, "X-Big: "+strings.Repeat("x", 900)+"\r\n"+strings.Repeat("X-More: "+strings.Repeat("y", 70)+"\r\n", 60)+"\r\nbody\r\n")
		if !strings.HasPrefix(got, "552 5.3.4") {
			t.Errorf("got %q, want 552 5.3.4", got)
		}
	})
	t.Run("mail loop", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		got := c.SendMail("a@example.com", []string{listAddr}, strings.Repeat("Received: from x by y\r\n", 51)+"\r\nbody\r\n")
		if !strings.HasPrefix(got, "554 5.4.6") {
			t.Errorf("got %q, want 554 5.4.6", got)
		}
	})
	t.Run("http request", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		start := time.Now()
		c.Send("GET / HTTP/1.1\r\nHost: mx1.example.org\r\nUser-Agent: x\r\n\r\n")
		if got := c.Read(); !strings.HasPrefix(got, "554 5.7.0") {
			t.Errorf("got %q, want 554 5.7.0", got)
		}
		if got := c.Read(); got != "" && !strings.Contains(got, "reset") {
			t.Errorf("after HTTP: %q, want the connection closed", got)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closing took %v", d)
		}
	})
	t.Run("proxy header from untrusted address", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		c.Send("PROXY TCP4 192.0.2.9 127.0.0.1 1234 25\r\n")
		if got := c.Read(); !strings.HasPrefix(got, "554 5.7.0") {
			t.Errorf("got %q, want 554 5.7.0", got)
		}
	})
	t.Run("bdat with bare lf", func(t *testing.T) {
		c, _ := dial(t, e.addr)
		c.Expect("EHLO client.example.com", "250")
		c.Expect("MAIL FROM:<a@example.com>", "250")
		c.Expect("RCPT TO:<"+listAddr+">", "250")
		body := "Subject: x\r\n\r\nsmuggle\n.\nMAIL FROM:<e@x>\r\n"
		c.Send("BDAT " + itoa(len(body)) + " LAST\r\n" + body)
		if got := c.Read(); !strings.HasPrefix(got, "554 5.6.0") {
			t.Errorf("got %q, want 554 5.6.0", got)
		}
	})
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d, want 0", n)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestProxyProtocol(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n"))
	c := &client{smtptest.New(t, nc), t}
	if g := c.Read(); !strings.HasPrefix(g, "220") {
		t.Fatalf("greeting %q", g)
	}
	c.Expect("EHLO client.example.com", "250")
	if got := c.SendMail("a@example.com", []string{listAddr}, message("proxied")); !strings.HasPrefix(got, "250") {
		t.Fatalf("got %q", got)
	}
	recs, _ := e.q.Peek(context.Background(), 1)
	if len(recs) != 1 || recs[0].ClientIP != "192.0.2.9" {
		t.Errorf("record client ip = %+v, want 192.0.2.9 from the PROXY header", recs)
	}
	// From a trusted proxy, the header is required.
	c2, _ := dialNoGreeting(t, e.addr)
	c2.Send("EHLO sneaky\r\n")
	if got := c2.Read(); strings.HasPrefix(got, "2") {
		t.Errorf("trusted proxy address without a PROXY header: %q, want the connection closed", got)
	}
}

func dialNoGreeting(t *testing.T, addr string) (*client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{smtptest.New(t, nc), t}, nil
}

// writeCert writes a self-signed certificate for name into dir.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeKeyCert(t, dir, "", name, key, key.Public())
}

// writeKeyCert writes a self-signed certificate for name with key to
// dir/PREFIXcert.pem and dir/PREFIXkey.pem.
func writeKeyCert(t *testing.T, dir, prefix, name string, key, pub any) (certFile, keyFile string, serial *big.Int) {
	t.Helper()
	serial, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, prefix+"cert.pem"), filepath.Join(dir, prefix+"key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile, serial
}

// starttls upgrades c and returns the server certificate's serial.
func (c *client) starttls(extra string) *big.Int {
	c.t.Helper()
	return c.StartTLS(&tls.Config{InsecureSkipVerify: true}, extra).PeerCertificates[0].SerialNumber
}

func TestStartTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, serial1 := writeCert(t, dir, "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.TLS = store.TLSConfig() })

	old, _ := dial(t, e.addr)
	if ehlo := old.Expect("EHLO client.example.com", "250"); !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("no STARTTLS in %q", ehlo)
	}
	// Plaintext pipelined after STARTTLS must be discarded, not run
	// inside the TLS session (CVE-2011-0411).
	if got := old.starttls("MAIL FROM:<injected@evil.example>\r\n"); got.Cmp(serial1) != 0 {
		t.Fatalf("serial %v, want %v", got, serial1)
	}
	old.Expect("EHLO client.example.com", "250")
	old.Expect("MAIL FROM:<alice@example.com>", "250") // not "nested MAIL"

	// A new certificate, reloaded: new sessions get it, the old one goes on.
	_, _, serial2 := writeCert(t, dir, "mx1.example.org")
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh, _ := dial(t, e.addr)
	fresh.Expect("EHLO client.example.com", "250")
	if got := fresh.starttls(""); got.Cmp(serial2) != 0 {
		t.Errorf("after reload: serial %v, want the new %v", got, serial2)
	}
	old.Expect("RCPT TO:<"+listAddr+">", "250")
	old.Expect("DATA", "354")
	old.Send(message("over tls") + ".\r\n")
	id, ok := strings.CutPrefix(old.Read(), "250 2.0.0 queued as ")
	if !ok {
		t.Fatal("old TLS session could not finish after the reload")
	}
	recs, _ := e.q.Peek(context.Background(), 10)
	if len(recs) != 1 || recs[0].ID != id || recs[0].TLSVersion != "TLS 1.3" || recs[0].TLSCipher == "" {
		t.Errorf("record = %+v, want TLS 1.3 and a cipher", recs)
	}
	body := e.body(id)
	if !strings.Contains(body, "with ESMTPS id "+id) || !strings.Contains(body, "(using TLS 1.3 with cipher") {
		t.Errorf("Received header lacks ESMTPS and the TLS version:\n%s", body[:min(400, len(body))])
	}
}

func TestSwaksTLS(t *testing.T) {
	swaks := servertest.LookPath(t, "swaks", "apt-get install swaks (make test installs it)")
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.TLS = store.TLSConfig() })
	out, err := exec.Command(swaks, "--server", e.addr, "--tls", "--from", "alice@example.com", "--to", listAddr, "--header", "Subject: swaks").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250 2.0.0 queued as") {
		t.Fatalf("swaks --tls: %v\n%s", err, out)
	}
	recs, _ := e.q.Peek(context.Background(), 1)
	if len(recs) != 1 || !strings.HasPrefix(recs[0].TLSVersion, "TLS 1.") {
		t.Errorf("record = %+v, want TLS", recs)
	}
}

// proxyV2TCP6 is a PROXY v2 header for a TCP connection from src.
func proxyV2TCP6(src netip.Addr) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24") // PROXY, TCP over IPv6, 36 bytes
	h = append(h, src.AsSlice()...)
	h = append(h, netip.MustParseAddr("2001:db8::25").AsSlice()...)
	return append(h, 0x9c, 0x40, 0, 25)
}

// The per-IP cap counts an IPv6 client by its /64: one host can use a new
// address of its /64 for every connection.
func TestConnectionCapIPv6Prefix(t *testing.T) {
	for _, tt := range []struct {
		prefixLen int
		admitted  int
	}{{64, 20}, {128, 25}} {
		t.Run(fmt.Sprintf("ipv6_prefix_len=%d", tt.prefixLen), func(t *testing.T) {
			e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
				c.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
				c.IPv6PrefixLen = tt.prefixLen
			})
			admitted := 0
			for i := range 25 {
				c, _ := dialNoGreeting(t, e.addr)
				c.Send(string(proxyV2TCP6(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 15: byte(i + 1)}))))
				switch got := c.Read(); {
				case strings.HasPrefix(got, "220"):
					admitted++
				case !strings.HasPrefix(got, "421 4.7.0"):
					t.Fatalf("connection %d: %q, want 220 or 421 4.7.0", i, got)
				}
			}
			if admitted != tt.admitted {
				t.Errorf("%d of 25 connections from one /64 admitted, want %d", admitted, tt.admitted)
			}
			// Another /64 has its own count.
			c, _ := dialNoGreeting(t, e.addr)
			c.Send(string(proxyV2TCP6(netip.MustParseAddr("2001:db8:1:3::1"))))
			if got := c.Read(); !strings.HasPrefix(got, "220") {
				t.Errorf("from another /64: %q, want 220", got)
			}
		})
	}
}
