package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// The bench's sender. Its domain publishes SPF and DMARC, and 127.0.0.1 has
// a PTR with a matching A record, so mxd's SPF, DMARC and iprev checks pass
// the way they would for a well-configured sender; so do the other loopback
// addresses a load may come from (-source), each with a name of its own.
// The messages are not DKIM-signed.
const (
	senderDomain = "sender.example"
	senderHost   = "mx-client.sender.example"
	senderAddr   = "bench@sender.example"
)

// dnsZone is what the bench's DNS server answers; any other name is
// NXDOMAIN, at once.
func dnsZone() map[string][]string {
	z := map[string][]string{
		senderDomain + ".":             {senderDomain + ". 300 IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\""},
		"_dmarc." + senderDomain + ".": {"_dmarc." + senderDomain + ". 300 IN TXT \"v=DMARC1; p=none\""},
		senderHost + ".":               {senderHost + ". 300 IN A 127.0.0.1"},
		"1.0.0.127.in-addr.arpa.":      {"1.0.0.127.in-addr.arpa. 300 IN PTR " + senderHost + "."},
	}
	for i := 2; i <= 254; i++ {
		host := fmt.Sprintf("mx-client%d.%s.", i, senderDomain)
		ptr := fmt.Sprintf("%d.0.0.127.in-addr.arpa.", i)
		z[host] = []string{fmt.Sprintf("%s 300 IN A 127.0.0.%d", host, i)}
		z[ptr] = []string{fmt.Sprintf("%s 300 IN PTR %s", ptr, host)}
	}
	return z
}

// startDNS serves dnsZone over UDP and TCP on one loopback port. It stands
// in for the validating resolver next to a production MX, answering from its
// cache: the bench machine has no other DNS, and a check that waits for a
// query timeout would measure the timeout, not mxd. Every mxd of a run
// shares the one server.
func (b *bench) startDNS() (string, error) {
	if b.dnsAddr != "" {
		return b.dnsAddr, nil
	}
	zone := map[string][]dns.RR{}
	for name, rrs := range dnsZone() {
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				return "", fmt.Errorf("zone record %q: %w", s, err)
			}
			zone[name] = append(zone[name], rr)
		}
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.RecursionAvailable = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		rrs, ok := zone[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		w.WriteMsg(m)
	})

	// The same port for UDP and TCP: take a UDP port, then TCP on it,
	// retrying if the TCP side is taken.
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			continue
		}
		udp := &dns.Server{PacketConn: pc, Handler: handler}
		tcp := &dns.Server{Listener: l, Handler: handler}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		b.onExit(func() { udp.Shutdown(); tcp.Shutdown() })
		b.dnsAddr = addr
		return addr, nil
	}
	return "", fmt.Errorf("no free loopback port for both UDP and TCP")
}
