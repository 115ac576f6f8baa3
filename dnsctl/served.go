package dnsctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strconv"
	"sync"
	"time"
)

// ServedKey is the certificate one address of an MX host showed over
// STARTTLS to a client that offered one kind of key only.
type ServedKey struct {
	Addr       string            `json:"addr"`        // ip:port
	Offered    string            `json:"offered"`     // ecdsa or rsa: what the ClientHello allowed
	KeyType    string            `json:"key_type"`    // what the certificate holds
	SPKISHA256 string            `json:"spki_sha256"` // of the leaf
	NotAfter   time.Time         `json:"not_after"`
	Cert       *x509.Certificate `json:"-"`
}

// probes are the two ClientHellos: TLS 1.2 with only ECDSA, then only RSA
// cipher suites. In TLS 1.2 the suite names the key type (RFC 5246 §7.4.2,
// RFC 8422 §2), so a server holding both an ECDSA and an RSA certificate
// shows each to one of them. TLS 1.3 suites do not, and Go's client does
// not let its signature algorithms be narrowed, so the probes use 1.2; a
// DANE sender may get either certificate in 1.3, which is why every one
// must have a record.
var probes = []struct {
	name   string
	suites []uint16
}{
	{"ecdsa", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
	{"rsa", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}},
}

// AddrKeys is what one address of a host serves.
type AddrKeys struct {
	Addr string      `json:"addr"`
	Keys []ServedKey `json:"keys"`
	Err  string      `json:"error,omitempty"` // the address could not be asked
}

// ServedKeys asks every address of host, on port, for each certificate it
// serves. An address that refuses both probes' handshakes, or cannot be
// reached, has Err set.
func (z *Zone) ServedKeys(ctx context.Context, host string, port int) ([]AddrKeys, error) {
	ips, err := z.HostAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]AddrKeys, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		wg.Go(func() {
			out[i] = AddrKeys{Addr: addr}
			out[i].Keys, err = servedAt(ctx, addr, host, z.timeout())
			if err != nil {
				out[i].Err = err.Error()
			}
		})
	}
	wg.Wait()
	return out, nil
}

// servedAt runs both probes on addr. A handshake the server refuses means
// it has no certificate of that kind; every other failure is an error.
func servedAt(ctx context.Context, addr, host string, timeout time.Duration) ([]ServedKey, error) {
	var keys []ServedKey
	var refusals []error
	for _, p := range probes {
		cert, err := starttls(ctx, addr, host, p.suites, timeout)
		var hs *handshakeError
		switch {
		case errors.As(err, &hs):
			refusals = append(refusals, fmt.Errorf("%s: %w", p.name, err))
			continue
		case err != nil:
			return nil, err
		}
		k := ServedKey{Addr: addr, Offered: p.name, KeyType: keyType(cert), SPKISHA256: SPKISHA256(cert), NotAfter: cert.NotAfter, Cert: cert}
		// A server with one key shows it to any probe it can: list it once.
		if len(keys) == 0 || keys[0].SPKISHA256 != k.SPKISHA256 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no STARTTLS handshake succeeded: %w", errors.Join(refusals...))
	}
	return keys, nil
}

func keyType(c *x509.Certificate) string {
	switch c.PublicKeyAlgorithm {
	case x509.ECDSA:
		return "ecdsa"
	case x509.RSA:
		return "rsa"
	case x509.Ed25519:
		return "ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// handshakeError is a TLS handshake the server refused with an alert.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// starttls greets addr, says EHLO and STARTTLS, and returns the leaf
// certificate of a TLS 1.2 handshake offering only suites. The
// certificate is not verified: what matters is which key it holds.
func starttls(ctx context.Context, addr, host string, suites []uint16, timeout time.Duration) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	c, err := smtp.NewClient(nc, trimDot(host))
	if err != nil {
		return nil, fmt.Errorf("smtp %s: greeting: %w", addr, err)
	}
	if err := c.Hello("dnsctl.invalid"); err != nil {
		return nil, fmt.Errorf("smtp %s: EHLO: %w", addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return nil, fmt.Errorf("smtp %s: STARTTLS is not offered", addr)
	}
	cfg := &tls.Config{
		ServerName:         trimDot(host),
		InsecureSkipVerify: true, // DANE-EE matches the key, not a chain
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       suites,
	}
	if err := c.StartTLS(cfg); err != nil {
		// Only a TLS alert from the server says it has no certificate
		// for these suites; a timeout or a reset says nothing of the kind,
		// and taking it for "none" could retire a record still in use.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			return nil, &handshakeError{err}
		}
		return nil, fmt.Errorf("smtp %s: STARTTLS: %w", addr, err)
	}
	st, _ := c.TLSConnectionState()
	c.Quit()
	if len(st.PeerCertificates) == 0 {
		return nil, fmt.Errorf("smtp %s: no certificate", addr)
	}
	return st.PeerCertificates[0], nil
}
