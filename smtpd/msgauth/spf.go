package msgauth

import (
	"context"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
)

// spfOutcome is the SPF verdict and the identity it is about.
type spfOutcome struct {
	result   string
	identity string // "mailfrom" or "helo"
	domain   string
}

// checkSPF evaluates check_host() (RFC 7208 §4) for the MAIL FROM identity,
// or for the HELO identity when the reverse-path is null (§2.4). The
// library enforces the limits of §4.6.4: 10 terms that cause lookups and 2
// void lookups, beyond which the result is permerror.
func (c *Checker) checkSPF(ctx context.Context, in Input) spfOutcome {
	out := spfOutcome{identity: "mailfrom"}
	sender := in.MailFrom
	if sender == "" {
		// §2.4: the null reverse-path is checked as postmaster@HELO.
		out.identity = "helo"
		sender = "postmaster@" + in.HELO
	}
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		out.result = None
		return out
	}
	local, domain := sender[:at], strings.ToLower(strings.TrimSuffix(sender[at+1:], "."))
	out.domain = domain
	if !spfDomain(domain) || !in.IP.IsValid() {
		// §4.3: a malformed or single-label domain (an address literal
		// as HELO is one) yields none.
		out.result = None
		return out
	}
	// The library splits at the first '@'; a quoted local part may hold
	// one, which would change the domain it checks.
	local = strings.ReplaceAll(local, "@", "=")
	ip := net.IP(in.IP.Unmap().AsSlice())
	r, _ := spf.CheckHostWithSender(ip, in.HELO, local+"@"+domain,
		spf.WithContext(ctx), spf.WithResolver(c.resolver))
	out.result = string(r)
	if out.result == "" {
		out.result = PermError
	}
	return out
}

// spfDomain reports whether d can be an SPF identity's domain: a
// multi-label name of valid labels (RFC 7208 §4.3).
func spfDomain(d string) bool {
	n, ok := dns.IsDomainName(d)
	if !ok || n < 2 || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.ContainsAny(label, " \t\\[]") {
			return false
		}
	}
	return true
}
