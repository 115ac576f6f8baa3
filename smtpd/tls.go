package smtpd

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// CertStore holds the STARTTLS certificate and replaces it on Reload
// (SIGHUP in mxd): sessions that start afterwards get the new one, and
// sessions already in TLS keep theirs.
type CertStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// NewCertStore loads the PEM certificate chain and key.
func NewCertStore(certFile, keyFile string) (*CertStore, error) {
	s := &CertStore{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the previous certificate stays.
func (s *CertStore) Reload() error {
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s, key %s: %w", s.certFile, s.keyFile, err)
	}
	s.cur.Store(&c)
	return nil
}

// TLSConfig returns a configuration that serves the current certificate,
// TLS 1.2 or later.
func (s *CertStore) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load(), nil
		},
	}
}
