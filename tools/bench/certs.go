package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// certFiles is one certificate and its key, PEM files.
type certFiles struct{ cert, key string }

// certificate returns the bench's self-signed certificate of kind ("rsa":
// RSA 2048, "ecdsa": ECDSA P-256), made in the run's directory the first
// time it is asked for. Postfix and mxd are given the same files.
func (b *bench) certificate(kind string) (certFiles, error) {
	if f, ok := b.certs[kind]; ok {
		return f, nil
	}
	dir := filepath.Join(b.dir, "tls")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return certFiles{}, err
	}
	f, err := writeCertificate(dir, kind, "mx-bench.invalid")
	if err != nil {
		return certFiles{}, err
	}
	if b.certs == nil {
		b.certs = map[string]certFiles{}
	}
	b.certs[kind] = f
	return f, nil
}

// writeCertificate makes a key of kind and a self-signed certificate for
// host, valid for a day, and writes them as DIR/KIND.pem and DIR/KIND.key.
func writeCertificate(dir, kind, host string) (certFiles, error) {
	var key crypto.Signer
	var err error
	switch kind {
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return certFiles{}, fmt.Errorf("certificate kind %q: want rsa or ecdsa", kind)
	}
	if err != nil {
		return certFiles{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return certFiles{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if kind == "rsa" {
		// TLS 1.2's RSA key exchange, which Postfix may still offer, needs it.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return certFiles{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certFiles{}, err
	}
	f := certFiles{cert: filepath.Join(dir, kind+".pem"), key: filepath.Join(dir, kind+".key")}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return certFiles{}, err
	}
	// Postfix's smtpd reads the key as root, before it drops privileges.
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return certFiles{}, err
	}
	return f, nil
}
