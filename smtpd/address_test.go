package smtpd

import (
	"strings"
	"testing"
	"unicode/utf8"

	mailaddr "mxq/address"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		utf8 bool
		want string // "" for ok, else the reply's code and enhanced code
	}{
		{"a@example.org", false, ""},
		{"~owner/list+subscribe@lists.example.org", false, ""},
		{"u.owner.list@lists.example.org", false, ""},
		{"a@[192.0.2.1]", false, ""},
		{"a@[IPv6:2001:db8::1]", false, ""},
		{"ü@example.org", true, ""},
		{"ü@example.org", false, "553 5.6.7"},
		{"a@exämple.org", false, "553 5.6.7"},
		{"", false, "553 5.1.3"},
		{"@", false, "553 5.1.3"},
		{"a@", false, "553 5.1.3"},
		{"@example.org", false, "553 5.1.3"},
		{"a@b@example.org", false, "553 5.1.3"},
		{"a\x00b@example.org", false, "553 5.1.3"},
		{"a@example.org.", false, "553 5.1.2"},
		{"a@.example.org", false, "553 5.1.2"},
		{"a@exa mple.org", false, "553 5.1.2"},
		{"a@-example.org", false, "553 5.1.2"},
		{"a@[300.1.1.1]", false, "553 5.1.2"},
		{"a@[IPv6:192.0.2.1]", false, "553 5.1.2"},
		{strings.Repeat("a", 65) + "@example.org", false, "553 5.1.3"},
		{"a@" + strings.Repeat("a", 64) + ".org", false, "553 5.1.2"},
		{"\xff@example.org", true, "553 5.1.3"},
		{"a\u00a0b@example.org", true, "553 5.1.3"}, // no-break space
		{"a\u2003b@example.org", true, "553 5.1.3"}, // em space
		{"a\u200bb@example.org", true, "553 5.1.3"}, // zero width space
		{"a\u2028b@example.org", true, "553 5.1.3"}, // line separator
		{"a\u0085b@example.org", true, "553 5.1.3"}, // NEL
		{"a\u00adb@example.org", true, "553 5.1.3"}, // soft hyphen (Cf)
		{"a@ex\u00a0ample.org", true, "553 5.1.2"},
		{"a@example.org\ufeff", true, "553 5.1.2"},
		{"a..b@example.org", false, ""}, // a sender may be sloppy; recipients may not
		{"a@lİsts.example.org", true, ""},
	}
	for _, tt := range tests {
		_, r := parseAddress(tt.in, tt.utf8)
		got := ""
		if r != nil {
			got = replyCode(r.Code, r.EnhancedCode)
		}
		if got != tt.want {
			t.Errorf("parseAddress(%q, utf8=%v) = %q, want %q", tt.in, tt.utf8, got, tt.want)
		}
	}
}

func TestParseRecipient(t *testing.T) {
	tests := []struct{ in, want string }{
		{"~owner/list@lists.example.org", ""},
		{"~owner/list+subscribe@lists.example.org", ""},
		{"u.owner.list@lists.example.org", ""},
		{"~/x@lists.example.org", ""}, // syntax is fine; the registry decides
		{"~a/@lists.example.org", "553 5.1.3"},
		{"/x@lists.example.org", "553 5.1.3"},
		{"~a//b@lists.example.org", "553 5.1.3"},
		{"~../..@lists.example.org", "553 5.1.3"},
		{"~a/./b@lists.example.org", "553 5.1.3"},
		{"~a/../b@lists.example.org", "553 5.1.3"},
		{".a@lists.example.org", "553 5.1.3"},
		{"a.@lists.example.org", "553 5.1.3"},
		{"a..b@lists.example.org", "553 5.1.3"},
		{"a\u00a0@lists.example.org", "553 5.1.3"},
		{"a@lists.example.org.", "553 5.1.2"},
	}
	for _, tt := range tests {
		_, r := parseRecipient(tt.in, true)
		got := ""
		if r != nil {
			got = replyCode(r.Code, r.EnhancedCode)
		}
		if got != tt.want {
			t.Errorf("parseRecipient(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func replyCode(code int, e [3]int) string {
	return strings.Join([]string{itoa(code), itoa(e[0]) + "." + itoa(e[1]) + "." + itoa(e[2])}, " ")
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}

// FuzzParseAddress checks that whatever parseAddress accepts is safe to
// put in a header and a record: valid UTF-8, no controls or invisible
// characters, one '@', a domain that validates again, and that folding
// it for comparison changes ASCII letters only; and that what
// parseRecipient accepts is a dot-string of non-empty '/' parts.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"a@example.org", "~o/l+s@lists.example.org", "a@[IPv6:::1]", "\"a@b\"@c", "a%b@c", "ü@ü.de",
		"post@lİsts.example.org", "~\u212a/x@lists.example.org", "~/x@lists.example.org", "~a/@lists.example.org",
		"~../..@lists.example.org", "po\u00a0st@lists.example.org", "po\u2003st@lists.example.org", "a..b@example.org"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowUTF8 bool) {
		a, r := parseAddress(s, allowUTF8)
		if r != nil {
			if r.Code < 500 {
				t.Fatalf("parseAddress(%q) = %d: an address refusal is permanent", s, r.Code)
			}
			return
		}
		out := a.String()
		if !utf8.ValidString(out) || strings.Count(out, "@") != 1 || strings.ContainsAny(out, "\x00\r\n\t <>\"\\") {
			t.Fatalf("parseAddress(%q) accepted %q", s, out)
		}
		if !allowUTF8 {
			for i := 0; i < len(out); i++ {
				if out[i] >= 0x80 {
					t.Fatalf("non-ASCII %q accepted without SMTPUTF8", out)
				}
			}
		}
		if !validDomain(a.domain) {
			t.Fatalf("domain %q accepted but does not validate", a.domain)
		}
		for _, c := range out {
			if mailaddr.Invisible(c) {
				t.Fatalf("parseAddress(%q) accepted %q with invisible %U", s, out, c)
			}
		}
		folded := foldDomain(a.domain)
		for i := 0; i < len(a.domain); i++ {
			if c := a.domain[i]; folded[i] != c && !('A' <= c && c <= 'Z' && folded[i] == c+'a'-'A') {
				t.Fatalf("foldDomain(%q) = %q: changed more than ASCII case", a.domain, folded)
			}
		}
		if _, r := parseRecipient(s, allowUTF8); r == nil {
			l := a.local
			if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
				t.Fatalf("parseRecipient(%q) accepted a local part that is not a dot-string", s)
			}
			for _, part := range strings.Split(l, "/") {
				if part == "" || part == "." || part == ".." {
					t.Fatalf("parseRecipient(%q) accepted an empty, . or .. part", s)
				}
			}
		}
	})
}
