package dnsctl_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/internal/certtest"
	"mxq/smtpd"
)

// writeKeyCert writes a self-signed certificate for host with key into
// dir/NAME.pem and dir/NAME.key and returns the certificate.
func writeKeyCert(t *testing.T, dir, name, host string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	return certtest.Write(t, filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"), host, key, 90*24*time.Hour)
}

// daneHost is an MX host running the real mxd with an ECDSA and an RSA
// certificate, reloadable as with SIGHUP.
type daneHost struct {
	dir   string
	store *smtpd.CertStore
}

func startDANEHost(t *testing.T, e *env, host string) (*daneHost, *x509.Certificate, *x509.Certificate) {
	t.Helper()
	h := &daneHost{dir: t.TempDir()}
	ec := writeKeyCert(t, h.dir, "ecdsa", host, certtest.ECDSA(t))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rc := writeKeyCert(t, h.dir, "rsa", host, rk)
	h.store, err = smtpd.NewCertStore(smtpd.CertFiles{Cert: filepath.Join(h.dir, "ecdsa.pem"), Key: filepath.Join(h.dir, "ecdsa.key")},
		smtpd.CertFiles{Cert: filepath.Join(h.dir, "rsa.pem"), Key: filepath.Join(h.dir, "rsa.key")})
	if err != nil {
		t.Fatal(err)
	}
	startMxd(t, e, host, func(_ *smtpd.Config, d *smtpd.Deps) { d.TLS = h.store.TLSConfig() })
	return h, ec, rc
}

// switchECDSA makes the host serve a new ECDSA key from now on, as a
// renewal and a SIGHUP do; it returns the new certificate.
func (h *daneHost) switchECDSA(t *testing.T, host string) *x509.Certificate {
	t.Helper()
	c := writeKeyCert(t, h.dir, "ecdsa", host, certtest.ECDSA(t))
	if err := h.store.Reload(); err != nil {
		t.Fatal(err)
	}
	return c
}

// waits records what Publish waits, and waits it.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (e *env) dane(w *waits) *dnsctl.DANE {
	return &dnsctl.DANE{Zone: newZone(e.t, e.dns), SMTPPort: e.port, TTL: dnstest.MXTTL, Margin: 100 * time.Millisecond,
		Propagation: 15 * time.Second, Sleep: w.sleep}
}

// tlsaEverywhere fails unless every authoritative server shows want for host.
func tlsaEverywhere(t *testing.T, z *dnsctl.Zone, host string, want dnsctl.TLSASet) {
	t.Helper()
	for _, v := range z.ReadTLSAAll(context.Background(), host) {
		if v.Err != nil || !v.TLSA.Equal(want) {
			t.Errorf("%s: %s, %v; want %s", v.Server, v.TLSA, v.Err, want)
		}
	}
}

func ee(certs ...*x509.Certificate) dnsctl.TLSASet {
	var s dnsctl.TLSASet
	for _, c := range certs {
		s = append(s, dnsctl.EE311(dnsctl.SPKISHA256(c), dnstest.MXTTL))
	}
	return dnsctl.NewTLSASet(s...)
}

// A certificate rollover on a signed zone: status sees both keys of the
// host (ECDSA and RSA) without records; publish adds 3 1 1 records for
// them on every server and waits the negative TTL; a new ECDSA key is
// published next to the old one before the host serves it; retire removes
// only the old key's record once the host serves the new one; and retire
// refuses, changing nothing, while the host serves a key without a record.
func TestTLSARollover(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dnstest.StartBINDSigned, "mx2.example.org", "mx3.example.org")
	const host = "mx1.example.org"
	h, ec1, rc := startDANEHost(t, e, host)
	var w waits
	d := e.dane(&w)

	st, err := d.Status(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if st.OK || len(st.Keys) != 2 || st.Keys[0].KeyType != "ecdsa" || st.Keys[1].KeyType != "rsa" || len(st.Published) != 0 {
		t.Fatalf("status before any record: %+v; want two keys (ecdsa, rsa) without records, not ok", st)
	}
	if st.Keys[0].SPKISHA256 != dnsctl.SPKISHA256(ec1) || st.Keys[1].SPKISHA256 != dnsctl.SPKISHA256(rc) {
		t.Fatalf("status keys %s %s, want the files' %s %s", st.Keys[0].SPKISHA256, st.Keys[1].SPKISHA256,
			dnsctl.SPKISHA256(ec1), dnsctl.SPKISHA256(rc))
	}

	rep, err := d.Publish(ctx, host, []*x509.Certificate{ec1, rc})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Added.Equal(ee(ec1, rc)) {
		t.Errorf("added %s, want %s", rep.Added, ee(ec1, rc))
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec1, rc))
	// No TLSA RRset before: resolvers may cache its absence for the
	// zone's negative TTL (SOA minimum 2 s), which is also the TTL.
	if want := 2*time.Second + d.Margin; len(w.d) != 1 || w.d[0] != want {
		t.Errorf("publish waited %v, want [%v]", w.d, want)
	}
	if st, err = d.Status(ctx, host); err != nil || !st.OK || !st.Agree || len(st.Unused) != 0 {
		t.Fatalf("status after publish: %+v, %v; want ok", st, err)
	}

	// The renewal: the new key is published before the host serves it.
	next := t.TempDir()
	ec2 := writeKeyCert(t, next, "next", host, certtest.ECDSA(t))
	if rep, err = d.Publish(ctx, host, []*x509.Certificate{ec2, rc}); err != nil {
		t.Fatal(err)
	}
	if !rep.Added.Equal(ee(ec2)) {
		t.Errorf("added %s, want only the new key's %s", rep.Added, ee(ec2))
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec1, ec2, rc))

	// The host switches to the new key (as with mxd's SIGHUP).
	for _, f := range []string{".pem", ".key"} {
		if err := os.Rename(filepath.Join(next, "next"+f), filepath.Join(h.dir, "ecdsa"+f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.store.Reload(); err != nil {
		t.Fatal(err)
	}
	ret, err := d.Retire(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if !ret.Removed.Equal(ee(ec1)) {
		t.Errorf("retire removed %s, want the old key's %s", ret.Removed, ee(ec1))
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec2, rc))

	// The wrong order: the host serves a key nobody published.
	ec3 := h.switchECDSA(t, host)
	_, err = d.Retire(ctx, host)
	var refused *dnsctl.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), dnsctl.SPKISHA256(ec3)) {
		t.Fatalf("retire while %s is served without a record: %v; want a refusal naming it", dnsctl.SPKISHA256(ec3), err)
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec2, rc))
}

// On an unsigned zone publish works on both primaries (BIND and Knot) and
// retire refuses, changing nothing, even with a record no key matches:
// senders ignore TLSA without DNSSEC, so nothing shows the removal is safe.
func TestTLSARetireUnsigned(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, setup.start, "mx2.example.org", "mx3.example.org")
			const host = "mx1.example.org"
			h, ec1, rc := startDANEHost(t, e, host)
			var w waits
			d := e.dane(&w)
			if _, err := d.Publish(ctx, host, []*x509.Certificate{ec1, rc}); err != nil {
				t.Fatal(err)
			}
			tlsaEverywhere(t, d.Zone, host, ee(ec1, rc))
			ec2 := h.switchECDSA(t, host)
			if _, err := d.Publish(ctx, host, []*x509.Certificate{ec2}); err != nil {
				t.Fatal(err)
			}
			_, err := d.Retire(ctx, host)
			var refused *dnsctl.RefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), "not signed") {
				t.Fatalf("retire on an unsigned zone: %v; want a refusal saying it is not signed", err)
			}
			tlsaEverywhere(t, d.Zone, host, ee(ec1, ec2, rc))
		})
	}
}

// A rollover whose reload hook fails stops after publishing and keeps its
// phase; run again it continues there (no second publish), reloads, sees
// the host serve the new key, retires the old record, and removes its
// state. A state file for other certificates makes it refuse.
func TestTLSARolloverResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dnstest.StartBINDSigned, "mx2.example.org", "mx3.example.org")
	const host = "mx1.example.org"
	h, ec1, rc := startDANEHost(t, e, host)
	var w waits
	d := e.dane(&w)
	if _, err := d.Publish(ctx, host, []*x509.Certificate{ec1, rc}); err != nil {
		t.Fatal(err)
	}
	next := t.TempDir()
	ec2 := writeKeyCert(t, next, "ecdsa", host, certtest.ECDSA(t))
	state := filepath.Join(t.TempDir(), "tlsa-mx1.json")
	reloads := 0
	failing := func(context.Context) error { reloads++; return errors.New("ssh: connection refused") }
	if _, err := d.Rollover(ctx, host, []*x509.Certificate{ec2, rc}, failing, state); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("rollover with a failing hook: %v", err)
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec1, ec2, rc))

	if _, err := d.Rollover(ctx, host, []*x509.Certificate{ec1, rc}, failing, state); !errors.As(err, new(*dnsctl.RefusedError)) {
		t.Fatalf("rollover to other keys while one is under way: %v; want a refusal", err)
	}

	reload := func(context.Context) error {
		reloads++
		for _, f := range []string{".pem", ".key"} {
			if err := os.Rename(filepath.Join(next, "ecdsa"+f), filepath.Join(h.dir, "ecdsa"+f)); err != nil {
				return err
			}
		}
		return h.store.Reload()
	}
	rep, err := d.Rollover(ctx, host, []*x509.Certificate{ec2, rc}, reload, state)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != dnsctl.RollPublished || rep.Publish != nil || reloads != 2 {
		t.Errorf("resumed at %q, publish %+v, %d reloads; want published, none, 2", rep.Resumed, rep.Publish, reloads)
	}
	if !rep.Retire.Removed.Equal(ee(ec1)) {
		t.Errorf("retired %s, want %s", rep.Retire.Removed, ee(ec1))
	}
	tlsaEverywhere(t, d.Zone, host, ee(ec2, rc))
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file after the rollover: %v; want it removed", err)
	}
}
