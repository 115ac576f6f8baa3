package smtpd_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"testing"

	"mxq/smtpd"
)

// writeRSACert writes a self-signed RSA 2048 certificate for name in dir.
func writeRSACert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, _ = writeKeyCert(t, dir, "rsa-", name, key, key.Public())
	return certFile, keyFile
}

// tlsHello opens a session, upgrades it with cfg, says EHLO in TLS (so
// that a TLS 1.3 ticket sent after the handshake is taken in), quits, and
// returns the connection's state.
func tlsHello(t *testing.T, addr string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	c, _ := dial(t, addr)
	c.Expect("EHLO client.example.com", "250")
	c.StartTLS(cfg, "")
	c.Expect("EHLO client.example.com", "250")
	c.Expect("QUIT", "221")
	return c.Conn().(*tls.Conn).ConnectionState()
}

func TestTLSResumptionAndTickets(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.TLS = store.TLSConfig() })
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		name := tls.VersionName(version)
		client := func() *tls.Config {
			return &tls.Config{InsecureSkipVerify: true, MaxVersion: version, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
		}

		t.Run(name+" resumes a session offered", func(t *testing.T) {
			cfg := client()
			if cs := tlsHello(t, e.addr, cfg); cs.DidResume || cs.Version != version {
				t.Fatalf("first: resumed %v, version %x", cs.DidResume, cs.Version)
			}
			if cs := tlsHello(t, e.addr, cfg); !cs.DidResume {
				t.Error("second session was not resumed")
			}
		})

		t.Run(name+" a ticket outlives one rotation, not two", func(t *testing.T) {
			cfg := client()
			tlsHello(t, e.addr, cfg)
			store.RotateTickets()
			if cs := tlsHello(t, e.addr, cfg); !cs.DidResume {
				t.Error("not resumed after one rotation")
			}
			cfg = client()
			tlsHello(t, e.addr, cfg)
			store.RotateTickets()
			store.RotateTickets()
			if cs := tlsHello(t, e.addr, cfg); cs.DidResume {
				t.Error("resumed with a ticket two rotations old")
			}
		})

		t.Run(name+" a certificate reload keeps resumption", func(t *testing.T) {
			cfg := client()
			tlsHello(t, e.addr, cfg)
			_, _, serial := writeCert(t, dir, "mx1.example.org")
			if err := store.Reload(); err != nil {
				t.Fatal(err)
			}
			if cs := tlsHello(t, e.addr, cfg); !cs.DidResume {
				t.Error("a session issued before the reload was not resumed")
			}
			if cs := tlsHello(t, e.addr, client()); cs.PeerCertificates[0].SerialNumber.Cmp(serial) != 0 {
				t.Error("a new session did not get the reloaded certificate")
			}
		})
	}
}

// With an RSA and an ECDSA certificate, a client that takes either gets
// the ECDSA one, whatever the order of the files; one that only takes RSA
// gets the RSA one.
func TestTLSPrefersECDSA(t *testing.T) {
	dir := t.TempDir()
	rsaCert, rsaKey := writeRSACert(t, dir, "mx1.example.org")
	ecCert, ecKey, _ := writeCert(t, dir, "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: rsaCert, Key: rsaKey}, smtpd.CertFiles{Cert: ecCert, Key: ecKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.TLS = store.TLSConfig() })
	for _, tt := range []struct {
		name   string
		cfg    *tls.Config
		wantEC bool
	}{
		{"any", &tls.Config{InsecureSkipVerify: true}, true},
		{"TLS 1.2 any", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}, true},
		{"TLS 1.2 RSA only", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, false},
	} {
		cs := tlsHello(t, e.addr, tt.cfg)
		_, isEC := cs.PeerCertificates[0].PublicKey.(*rsa.PublicKey)
		isEC = !isEC
		if isEC != tt.wantEC {
			t.Errorf("%s: got an ECDSA certificate %v, want %v", tt.name, isEC, tt.wantEC)
		}
	}
}
