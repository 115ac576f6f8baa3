package msgauth

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

// maxLine is the line length RFC 5322 §2.1.1 says lines SHOULD stay within.
const maxLine = 78

// header formats res as one Authentication-Results field (RFC 8601 §2.2):
// the authserv-id, then one resinfo per line in the order the checks apply
// in a session: iprev, spf, dkim (one per verified signature), dmarc. Each
// resinfo is go-msgauth's authres formatting; the folding is ours.
func (c *Checker) header(res *Result, ip netip.Addr) string {
	type part struct {
		r       authres.Result
		comment string
	}
	parts := []part{{r: &authres.IPRevResult{Value: authres.ResultValue(res.IPRev),
		IP: ipString(ip)}}}
	if res.IPRevName != "" {
		parts[0].comment = "(" + clean(res.IPRevName) + ")"
	}

	spf := &authres.SPFResult{Value: authres.ResultValue(res.SPF)}
	if res.SPFIdentity == "helo" {
		spf.Helo = clean(res.HELO)
	} else {
		spf.From = mailFromValue(res.MailFrom, res.SPFDomain)
	}
	parts = append(parts, part{r: spf})

	if len(res.DKIMSignatures) == 0 {
		parts = append(parts, part{r: &authres.DKIMResult{Value: authres.ResultNone}})
	}
	for _, s := range res.DKIMSignatures {
		parts = append(parts, part{r: &authres.GenericResult{Method: "dkim",
			Value: authres.ResultValue(s.Result),
			Params: map[string]string{
				"header.d": clean(s.Domain),
				"header.s": clean(s.Selector),
				"header.a": clean(s.Algorithm),
				"header.b": clean(s.B),
			}}})
	}

	dmarc := map[string]string{"header.from": clean(res.FromDomain)}
	if res.DMARCPolicy != "" {
		dmarc["policy.dmarc"] = res.DMARCPolicy
	}
	parts = append(parts, part{r: &authres.GenericResult{Method: "dmarc",
		Value: authres.ResultValue(res.DMARC), Params: dmarc}})

	var b strings.Builder
	b.WriteString("Authentication-Results: " + c.id)
	prefix := c.id + "; "
	for _, p := range parts {
		text := strings.TrimSpace(strings.TrimPrefix(authres.Format(c.id, []authres.Result{p.r}), prefix))
		if p.comment != "" {
			text += " " + p.comment
		}
		b.WriteString(";")
		fold(&b, text)
	}
	b.WriteString("\r\n")
	return b.String()
}

// fold writes text on a new continuation line, breaking it at spaces
// between properties where a line would exceed maxLine. The values have no
// spaces (clean removes them), so no break falls inside a quoted string.
func fold(b *strings.Builder, text string) {
	b.WriteString("\r\n\t")
	n := 8 // a tab
	for i, word := range strings.Split(text, " ") {
		if i > 0 {
			if n+1+len(word) > maxLine {
				b.WriteString("\r\n\t")
				n = 8
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
}

// clean keeps a property value from breaking the header: it drops control
// characters, whitespace, backslashes and double quotes, which a client's
// HELO or address could carry and go-msgauth would put inside a
// quoted-string as they are, and ';' and parentheses, which naive parsers
// (go-msgauth's among them) read as structure even inside quotes. It cuts
// what is left at maxValue octets: a client chooses the HELO name, the
// From domain and a signature's d= and s=, and no line of the field may
// exceed RFC 5322 §2.1.1's 998 octets.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`\";()`, r) {
			return -1
		}
		return r
	}, s)
	if len(s) <= maxValue {
		return s
	}
	n := maxValue
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxValue is the longest property value: the longest domain (RFC 5321
// §4.5.3.1.2), and so the longest HELO name worth showing.
const maxValue = 255

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.Unmap().String()
}

// mailFromValue is the smtp.mailfrom property (RFC 8601 §2.7.2): the
// address when its local part is a dot-atom, else only the domain, which
// the property allows and which needs no quoting.
func mailFromValue(addr, domain string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return clean(domain)
	}
	local := addr[:at]
	for _, atom := range strings.Split(local, ".") {
		if atom == "" || strings.IndexFunc(atom, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r >= 0x80 || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r))
		}) >= 0 {
			return clean(domain)
		}
	}
	return clean(local + "@" + domain)
}
