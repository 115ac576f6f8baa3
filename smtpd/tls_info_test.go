package smtpd_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"mxq/smtpd"
)

// The info metric names the SPKI SHA-256 of every certificate served, and
// a reload replaces it; the hash is that of the key a client is shown.
func TestCertificateInfoMetric(t *testing.T) {
	dir := t.TempDir()
	ecCert, ecKey, _ := writeCert(t, dir, "mx1.example.org")
	rsaCert, rsaKey := writeRSACert(t, dir, "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: rsaCert, Key: rsaKey}, smtpd.CertFiles{Cert: ecCert, Key: ecKey})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(smtpd.CertCollector(store))

	spki := func(file, key string) string {
		c, err := tls.LoadX509KeyPair(file, key)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(sum[:])
	}
	want := func(ec string) string {
		return "file=" + ecCert + ",key_type=ecdsa,spki_sha256=" + ec + " 1\n" +
			"file=" + rsaCert + ",key_type=rsa,spki_sha256=" + spki(rsaCert, rsaKey) + " 1\n"
	}
	before := spki(ecCert, ecKey)
	if got, want := infoLines(t, reg), want(before); got != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}

	writeCert(t, dir, "mx1.example.org") // a new ECDSA key in the same files
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	after := spki(ecCert, ecKey)
	if after == before {
		t.Fatal("the new certificate has the old key")
	}
	if got, want := infoLines(t, reg), want(after); got != want {
		t.Fatalf("after reload got\n%swant\n%s", got, want)
	}
}

// infoLines returns the series of mxd_tls_certificate_info, one a line.
func infoLines(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != "mxd_tls_certificate_info" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s %g\n", strings.Join(l, ","), m.GetGauge().GetValue()))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}
