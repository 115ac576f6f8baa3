package smtpd

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func proxyV2(cmd byte, fam byte, addr []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x20|cmd, fam<<4|1, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addr)))
	return append(b, addr...)
}

func TestReadProxyHeader(t *testing.T) {
	v4 := []byte{192, 0, 2, 7, 127, 0, 0, 1, 0x30, 0x39, 0, 25}
	v6 := append(append(netip.MustParseAddr("2001:db8::7").AsSlice(), netip.MustParseAddr("::1").AsSlice()...), 0x30, 0x39, 0, 25)
	tests := []struct {
		name, in string
		want     string // the address, "" for none, "error" for an error
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.7 127.0.0.1 12345 25\r\n", "192.0.2.7:12345"},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 ::1 12345 25\r\n", "[2001:db8::7]:12345"},
		{"v1 unknown", "PROXY UNKNOWN\r\n", ""},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::7 ::1 1 25\r\n", "error"},
		{"v1 no crlf", "PROXY TCP4 192.0.2.7 127.0.0.1 12345 25\n", "error"},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", "error"},
		{"v1 bad port", "PROXY TCP4 192.0.2.7 127.0.0.1 99999 25\r\n", "error"},
		{"v2 inet", string(proxyV2(1, 1, v4)), "192.0.2.7:12345"},
		{"v2 inet6", string(proxyV2(1, 2, v6)), "[2001:db8::7]:12345"},
		{"v2 local", string(proxyV2(0, 0, nil)), ""},
		{"v2 short address", string(proxyV2(1, 1, v4[:6])), "error"},
		{"not proxy", "EHLO x\r\n", "error"},
		{"truncated", "PROX", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader([]byte(tt.in + "EHLO next\r\n"))
			ap, err := readProxyHeader(r)
			got := ""
			switch {
			case err != nil:
				got = "error"
			case ap.IsValid():
				got = ap.String()
			}
			if got != tt.want {
				t.Fatalf("got %q (err %v), want %q", got, err, tt.want)
			}
			if err == nil {
				rest := make([]byte, 32)
				n, _ := r.Read(rest)
				if string(rest[:n]) != "EHLO next\r\n" {
					t.Errorf("read past the header: left %q", rest[:n])
				}
			}
		})
	}
}
