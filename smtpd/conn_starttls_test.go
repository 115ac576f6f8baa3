package smtpd

import (
	"bytes"
	"testing"
)

// TLS begins with the second single-line 220 reply, the one to STARTTLS,
// and not before; everything written passes through.
func TestStartTLSWatch(t *testing.T) {
	for _, tt := range []struct {
		writes []string
		begun  bool
	}{
		{nil, false},
		{[]string{"220 mx.example.org ESMTP Service Ready\r\n"}, false},
		{[]string{"220 mx ESMTP\r\n", "250-mx\r\n", "250 STARTTLS\r\n", "250 2.0.0 OK\r\n"}, false},
		{[]string{"220-mx ESMTP\r\n", "220 more\r\n"}, false}, // a multi-line greeting
		{[]string{"220 mx ESMTP\r\n", "250 STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n"}, true},
		{[]string{"220 mx ESMTP\r\n", "220 2.0.0 Ready to start TLS\r\n", "\x16\x03\x03"}, true},
		{[]string{"220 mx ESMTP\r\n", "554 5.7.0 no\r\n", "x220 \r\n"}, false},
	} {
		var out bytes.Buffer
		w := &startTLSWatch{w: &out}
		var all string
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			all += s
		}
		if got := w.begun(); got != tt.begun {
			t.Errorf("%q: begun %v, want %v", tt.writes, got, tt.begun)
		}
		if out.String() != all {
			t.Errorf("%q: passed %q", tt.writes, out.String())
		}
	}
}
