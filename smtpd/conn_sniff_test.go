package smtpd

import (
	"io"
	"net"
	"testing"
)

// partsReader gives one part per read.
type partsReader struct{ parts []string }

func (p *partsReader) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts = p.parts[1:]
	return n, nil
}

// The sniffer refuses a first line that is an HTTP request or a PROXY
// header however it is split into reads, once, and passes everything
// else on unchanged.
func TestSniffer(t *testing.T) {
	const (
		http  = "554 5.7.0 This is an SMTP server, not HTTP\r\n"
		proxy = "554 5.7.0 PROXY header not accepted from this address\r\n"
	)
	for _, tt := range []struct {
		parts  []string
		refuse string // the reply, or "" for a client passed on
	}{
		{[]string{"GET / HTTP/1.1\r\n"}, http},
		{[]string{"GE", "T / HTTP/1.1\r\n"}, http},
		{[]string{"O", "P", "T", "I", "O", "N", "S", " * HTTP/1.1\r\n"}, http},
		{[]string{"CONNEC", "T mx:25 HTTP/1.1\r\n"}, http},
		{[]string{"PRO", "XY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"}, proxy},
		{[]string{"\r\n\r\n\x00\r\nQ", "UIT\n"}, proxy},
		{[]string{"EHLO client.example.com\r\n"}, ""},
		{[]string{"HE", "LO client.example.com\r\n"}, ""},
		{[]string{"GET\r\n", "GET / HTTP/1.1\r\n"}, ""},               // only the first line counts
		{[]string{"EHLO a\r\n", "GET / HTTP/1.1\r\n"}, ""},            // ditto
		{[]string{"P", "O", "S", "T", "\r\n", "POST / HTTP/1.1"}, ""}, // a line that ends before the method does
	} {
		below := &partsReader{parts: tt.parts}
		var refused []string
		s := &sniffer{r: below, refuse: func(msg string) { refused = append(refused, msg) }}
		var passed string
		var err error
		for err == nil {
			b := make([]byte, 64)
			var n int
			n, err = s.Read(b)
			passed += string(b[:n])
		}
		var all string
		for _, p := range tt.parts {
			all += p
		}
		switch {
		case tt.refuse == "" && (len(refused) != 0 || passed != all || err != io.EOF):
			t.Errorf("%q: refused %q, passed on %q, then %v; want all passed on, then EOF", tt.parts, refused, passed, err)
		case tt.refuse != "" && (len(refused) != 1 || refused[0] != tt.refuse || err != net.ErrClosed):
			t.Errorf("%q: refused %q, then %v; want %q once, then %v", tt.parts, refused, err, tt.refuse, net.ErrClosed)
		}
	}
}
