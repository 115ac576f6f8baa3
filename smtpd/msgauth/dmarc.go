package msgauth

import (
	"context"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// author is the RFC5322.From domain DMARC is about, or why there is none.
type author struct {
	domain string
	result string // None or PermError when domain is ""
	err    string // for logs
}

// authorDomain finds the Author Domain (RFC 7489 §3.1, §6.6.1). There must
// be exactly one From field; it may hold several mailboxes only when they
// share one domain. A message without a From field, or with a group of no
// mailboxes, has no Author Domain (none); several From fields, mailboxes
// of different domains or an unparsable field make the check permerror,
// since picking one domain would let a sender choose which policy applies.
func authorDomain(msg []byte, fields []field) author {
	var from []field
	for _, f := range fields {
		if strings.EqualFold(f.name, "From") {
			from = append(from, f)
		}
	}
	switch len(from) {
	case 0:
		return author{result: None, err: "no From field"}
	case 1:
	default:
		return author{result: PermError, err: "several From fields"}
	}
	v := from[0].value(msg)
	if v == "" {
		return author{result: None, err: "From holds no mailbox"}
	}
	list, err := mail.ParseAddressList(v)
	if err != nil {
		return author{result: PermError, err: "From field: " + err.Error()}
	}
	domain := ""
	for _, a := range list {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return author{result: PermError, err: "From address without a domain"}
		}
		d, err := idna.Lookup.ToASCII(strings.TrimSuffix(a.Address[at+1:], "."))
		if err != nil || !spfDomain(d) {
			return author{result: PermError, err: "From domain is not a domain name"}
		}
		d = strings.ToLower(d)
		if domain != "" && d != domain {
			return author{result: PermError, err: "From holds mailboxes of several domains"}
		}
		domain = d
	}
	if domain == "" {
		return author{result: None, err: "From holds no mailbox"}
	}
	return author{domain: domain}
}

// policy is the DMARC record that applies to the Author Domain.
type policy struct {
	rec    *dmarc.Record
	effect string // p=, or sp= when the record is the organizational domain's
	temp   bool
	err    string
}

// lookupPolicy discovers the policy (RFC 7489 §6.6.3): the record at
// _dmarc.<domain>, else the one at the organizational domain, whose sp=
// then applies. A record that does not parse counts as no record.
func (c *Checker) lookupPolicy(ctx context.Context, domain string) policy {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		return c.resolver.LookupTXT(ctx, name)
	}}
	candidates := []string{domain}
	if org := orgDomain(domain); org != domain {
		candidates = append(candidates, org)
	}
	for _, d := range candidates {
		rec, err := dmarc.LookupWithOptions(d, opts)
		switch {
		case err == nil:
			p := policy{rec: rec, effect: string(rec.Policy)}
			if d != domain && rec.SubdomainPolicy != "" {
				p.effect = string(rec.SubdomainPolicy)
			}
			return p
		case dmarc.IsTempFail(err):
			return policy{temp: true, err: err.Error()}
		}
		// dmarc.ErrNoPolicy, or a record with a syntax error, which
		// §6.6.3 ignores: try the organizational domain.
	}
	return policy{err: "no DMARC record"}
}

// orgDomain returns the Organizational Domain (RFC 7489 §3.2): the public
// suffix plus one label, by the Public Suffix List.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d // d is itself a public suffix
	}
	return org
}

// aligned reports whether an authenticated domain is aligned with the
// Author Domain (RFC 7489 §3.1.1, §3.1.2): identical in strict mode, of
// the same Organizational Domain in relaxed mode.
func aligned(authenticated, author string, mode dmarc.AlignmentMode) bool {
	authenticated = strings.ToLower(strings.TrimSuffix(authenticated, "."))
	if mode == dmarc.AlignmentStrict {
		return authenticated == author
	}
	return orgDomain(authenticated) == orgDomain(author)
}

// evaluateDMARC sets res.DMARC and the alignment fields (RFC 7489 §4.2):
// pass when SPF or a DKIM signature passed for an aligned domain. Without
// an aligned pass, a temperror of an aligned SPF identity or signature
// makes the result temperror (it might pass later), else it is fail.
func (c *Checker) evaluateDMARC(res *Result, from author, pol policy) {
	switch {
	case from.domain == "":
		res.DMARC = from.result
		if from.result == PermError {
			res.FromError = from.err
		}
		return
	case pol.temp:
		res.DMARC = TempError
		return
	case pol.rec == nil:
		res.DMARC = None
		return
	}
	res.DMARCPolicy = pol.effect
	spfAligned := res.SPFDomain != "" && aligned(res.SPFDomain, from.domain, pol.rec.SPFAlignment)
	res.SPFAligned = spfAligned && res.SPF == Pass
	temp := spfAligned && res.SPF == TempError
	for _, s := range res.DKIMSignatures {
		if !aligned(s.Domain, from.domain, pol.rec.DKIMAlignment) {
			continue
		}
		res.DKIMAligned = res.DKIMAligned || s.Result == Pass
		temp = temp || s.Result == TempError
	}
	switch {
	case res.SPFAligned || res.DKIMAligned:
		res.DMARC = Pass
	case temp:
		res.DMARC = TempError
	default:
		res.DMARC = Fail
	}
}
