package smtpd

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CertFiles is one certificate chain and its key, PEM files.
type CertFiles struct {
	Cert, Key string
}

// CertStore holds the STARTTLS certificates and the keys of the session
// tickets. Reload (SIGHUP in mxd) replaces the certificates: sessions that
// start afterwards get the new ones, sessions already in TLS keep theirs,
// and tickets issued before still resume, since the ticket keys do not
// change with the certificates.
//
// With several certificates (an ECDSA and an RSA one, say) a client gets
// the first of them it supports, ECDSA before RSA whatever the order of
// the files: an ECDSA signature costs the server a fraction of an RSA one.
//
// Ticket keys rotate (RotateTickets, RunTicketRotation): a new key encrypts
// the tickets from then on, and the one before is still accepted, so a
// ticket resumes for between one and two rotation periods.
type CertStore struct {
	files  []CertFiles
	certs  atomic.Pointer[[]*tls.Certificate]
	served atomic.Pointer[[]ServedCert] // what certs holds, for /metrics and -check-config

	mu   sync.Mutex
	keys [][32]byte
	conf atomic.Pointer[tls.Config] // the configuration one handshake gets
}

// NewCertStore loads the certificates and starts with a fresh ticket key.
func NewCertStore(files ...CertFiles) (*CertStore, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("tls: no certificate")
	}
	s := &CertStore{files: files}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	s.RotateTickets()
	return s, nil
}

// Reload reads the files again. On error the previous certificates stay.
func (s *CertStore) Reload() error {
	var certs []*tls.Certificate
	var served []ServedCert
	for _, f := range s.files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return fmt.Errorf("tls certificate %s, key %s: %w", f.Cert, f.Key, err)
		}
		certs = append(certs, &c)
		served = append(served, describe(f.Cert, c.Leaf))
	}
	slices.SortStableFunc(certs, func(a, b *tls.Certificate) int { return keyRank(a) - keyRank(b) })
	s.certs.Store(&certs)
	s.served.Store(&served)
	return nil
}

// ServedCert describes one certificate the store serves: what a DANE
// TLSA record "3 1 1" (DANE-EE, SubjectPublicKeyInfo, SHA-256; RFC 7671
// §5.1) must hold for it.
type ServedCert struct {
	File       string    // the certificate file
	KeyType    string    // ecdsa, rsa, ed25519
	SPKISHA256 string    // SHA-256 of the leaf's SubjectPublicKeyInfo, lower-case hex
	NotAfter   time.Time // when the leaf expires
}

// Served returns the certificates loaded by the last successful Reload,
// in the order of the files.
func (s *CertStore) Served() []ServedCert {
	return slices.Clone(*s.served.Load())
}

func describe(file string, leaf *x509.Certificate) ServedCert {
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	kt := "other"
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		kt = "ecdsa"
	case *rsa.PublicKey:
		kt = "rsa"
	case ed25519.PublicKey:
		kt = "ed25519"
	}
	return ServedCert{File: file, KeyType: kt, SPKISHA256: hex.EncodeToString(sum[:]), NotAfter: leaf.NotAfter}
}

// keyRank orders certificates by what their signatures cost the server.
func keyRank(c *tls.Certificate) int {
	switch c.PrivateKey.(type) {
	case ed25519.PrivateKey:
		return 0
	case *ecdsa.PrivateKey:
		return 1
	}
	return 2
}

// RotateTickets makes a new ticket key the one that encrypts, and keeps
// the previous one for decrypting.
func (s *CertStore) RotateTickets() {
	var k [32]byte
	rand.Read(k[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([][32]byte{k}, s.keys...)
	if len(s.keys) > 2 {
		s.keys = s.keys[:2]
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certificate}
	c.SetSessionTicketKeys(s.keys)
	s.conf.Store(c)
}

// DefaultTicketRotation is how often mxd replaces the session ticket
// key by default (tls_ticket_rotation): a ticket resumes for between one
// and two periods.
const DefaultTicketRotation = time.Hour

// RunTicketRotation rotates the ticket keys every period until ctx ends.
// every must be more than 0 (time.NewTicker panics otherwise).
func (s *CertStore) RunTicketRotation(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.RotateTickets()
		}
	}
}

// certificate picks the first certificate the client supports.
func (s *CertStore) certificate(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *s.certs.Load()
	for _, c := range certs {
		if chi.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return certs[0], nil // the handshake fails with the client's own error
}

// TLSConfig returns the configuration to serve: TLS 1.2 and 1.3, the
// current certificates and ticket keys for each handshake.
func (s *CertStore) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.certificate,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.conf.Load(), nil
		},
	}
}
