package main

import (
	"io"
	"testing"

	"github.com/miekg/dns"
)

func TestDNS(t *testing.T) {
	b := &bench{stderr: io.Discard}
	t.Cleanup(b.exit)
	addr, err := b.startDNS()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		qtype uint16
		net   string
		rcode int
		want  string // the first answer's data, "" for none
	}{
		{"sender.example.", dns.TypeTXT, "udp", dns.RcodeSuccess, "\"v=spf1 ip4:127.0.0.0/8 -all\""},
		{"_dmarc.sender.example.", dns.TypeTXT, "tcp", dns.RcodeSuccess, "\"v=DMARC1; p=none\""},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, "udp", dns.RcodeSuccess, "mx-client.sender.example."},
		{"MX-Client.Sender.Example.", dns.TypeA, "udp", dns.RcodeSuccess, "127.0.0.1"},
		// The other loopback addresses a load comes from with -source.
		{"201.0.0.127.in-addr.arpa.", dns.TypePTR, "udp", dns.RcodeSuccess, "mx-client201.sender.example."},
		{"mx-client201.sender.example.", dns.TypeA, "udp", dns.RcodeSuccess, "127.0.0.201"},
		{"sender.example.", dns.TypeMX, "udp", dns.RcodeSuccess, ""},
		{"unknown.example.", dns.TypeTXT, "udp", dns.RcodeNameError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.name, tt.qtype)
			r, _, err := (&dns.Client{Net: tt.net}).Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			got := ""
			if len(r.Answer) > 0 {
				rr := r.Answer[0]
				got = rr.String()[len(rr.Header().String()):]
			}
			if got != tt.want {
				t.Errorf("answer %q, want %q", got, tt.want)
			}
		})
	}
}
