package smtpd

import (
	"bytes"
	"io"
	"sync"
)

// startTLSWatch notes, from the replies written through it, when TLS
// begins. Besides the greeting, the only 220 reply is the one to STARTTLS,
// after which the next bytes either way are the TLS handshake (RFC 3207
// §4); later replies are TLS records. go-smtp writes each reply line with
// one Write.
type startTLSWatch struct {
	w io.Writer // the layer below

	mu      sync.Mutex
	greeted bool // the greeting was written
	tls     bool // the reply to STARTTLS was written
}

func (s *startTLSWatch) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("220 ")) {
		s.mu.Lock()
		if s.greeted {
			s.tls = true
		}
		s.greeted = true
		s.mu.Unlock()
	}
	return s.w.Write(b)
}

// begun reports whether TLS has begun: plaintext may no longer be sent.
func (s *startTLSWatch) begun() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tls
}
