package smtpd

import (
	"bytes"
	"io"
	"net"
	"strings"
)

// sniffer looks at the first bytes a client sends, however they are split
// into reads, for a first line that is not SMTP (see sniff). It answers
// such a client once and closes the connection, rather than reply to
// each line of an HTTP request or a PROXY header.
//
// Only the session's goroutine reads: no lock.
type sniffer struct {
	r      io.Reader        // the layer below
	refuse func(msg string) // answers with msg and closes the connection

	done  bool    // the first bytes were judged
	first [8]byte // the first bytes, until judged: as long as the longest prefix sniff knows
	n     int
}

func (s *sniffer) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if s.done || n == 0 {
		return n, err
	}
	s.n += copy(s.first[s.n:], b[:n])
	msg, more := sniff(s.first[:s.n])
	s.done = !more || s.n == len(s.first)
	if msg != "" {
		s.refuse(msg)
		return 0, net.ErrClosed
	}
	return n, err
}

// sniff recognises a first line that is not SMTP: an HTTP request, or a
// PROXY header from an address not trusted to send one. b is what the
// client sent so far; more says it could still turn out to be one of
// them, so the next bytes must be looked at too ("GE", then "T /").
func sniff(b []byte) (msg string, more bool) {
	for _, m := range []string{"GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "CONNECT ", "DELETE "} {
		switch {
		case bytes.HasPrefix(b, []byte(m)):
			return replyLine(replyHTTP), false
		case len(b) < len(m) && strings.HasPrefix(m, string(b)):
			more = true
		}
	}
	for _, m := range []string{"PROXY ", string(proxyV2Sig[:5])} {
		switch {
		case bytes.HasPrefix(b, []byte(m)):
			return replyLine(replyUntrustedProxy), false
		case len(b) < len(m) && strings.HasPrefix(m, string(b)):
			more = true
		}
	}
	return "", more && bytes.IndexByte(b, '\n') < 0
}
