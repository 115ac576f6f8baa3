package smtpd

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	mailaddr "mxq/address"
)

// address is a checked mailbox.
type address struct {
	local, domain string
}

func (a address) String() string { return a.local + "@" + a.domain }

// parseAddress checks a mailbox as go-smtp hands it over: angle brackets
// and any source route already removed (RFC 5321 §4.1.1.3: a source route
// is judged by its final domain), a quoted local part already unquoted.
// utf8 says whether the client asked for SMTPUTF8 (RFC 6531) in MAIL.
func parseAddress(s string, utf8Allowed bool) (address, *smtp.SMTPError) {
	if s == "" {
		return address{}, replyBadAddress
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return address{}, replyBadAddress
		case c >= 0x80 && !utf8Allowed:
			return address{}, replyNeedUTF8
		}
	}
	if !utf8.ValidString(s) {
		return address{}, replyBadAddress
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return address{}, replyBadAddress
	}
	local, domain := s[:at], s[at+1:]
	// An '@' left in the local part came from a quoted string
	// ("a@b"@host): legal, but no list address looks like that, and
	// software downstream may split at the wrong '@'.
	if !validLocal(local) {
		return address{}, replyBadAddress
	}
	if !validDomain(domain) {
		return address{}, replyBadDomain
	}
	return address{local: local, domain: domain}, nil
}

// parseRecipient is parseAddress for RCPT, where the address must also
// be one a list can have (mailaddr.WellFormedLocal): the local part a
// dot-string (RFC 5321 §4.1.2: no leading, trailing or double dot)
// without an empty, "." or ".." part between '/' ("~owner/list").
// MAIL FROM keeps the looser rule: senders such as "a..b@" exist, and
// mxd never delivers to them.
func parseRecipient(s string, utf8Allowed bool) (address, *smtp.SMTPError) {
	a, r := parseAddress(s, utf8Allowed)
	if r == nil && !mailaddr.WellFormedLocal(a.local) {
		return address{}, replyBadAddress
	}
	return a, r
}

// validLocal accepts a local part of RFC 5322 atext and dots, UTF-8
// allowed (RFC 6531) but for white space, controls and other invisible
// characters (mailaddr.Invisible: U+00A0, U+2003, U+200B …), which make an
// address look like another. Quoted local parts arrive unquoted from
// go-smtp; one that needed quoting ("a@b", "a b") is refused: no list
// address looks like that, and software downstream may split it at the
// wrong place.
func validLocal(local string) bool {
	if local == "" || len(local) > 64 {
		return false
	}
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r >= 0x80 && !mailaddr.Invisible(r):
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}

// foldDomain returns domain as the list domains are compared: without a
// trailing dot, ASCII letters lowered and nothing else, as in the
// recipient registry (mailaddr.Fold). strings.ToLower would take "lİsts"
// (U+0130) for "lists" and U+212A KELVIN SIGN for "k".
func foldDomain(domain string) string {
	return mailaddr.Fold(strings.TrimSuffix(domain, "."))
}

// routed reports whether a local part uses the '%' hack or a UUCP '!'
// path to route through this host.
func (a address) routed() bool {
	return strings.ContainsAny(a.local, "%!")
}

// validDomain checks RFC 5321 §4.1.2 Domain / address-literal syntax:
// dot-separated labels of letters, digits and hyphens (or UTF-8 when the
// client uses SMTPUTF8, but no invisible characters), no empty label, no
// trailing dot.
func validDomain(d string) bool {
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := d[1 : len(d)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6()
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	if len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80 && !mailaddr.Invisible(r)) {
				return false
			}
		}
	}
	return true
}
