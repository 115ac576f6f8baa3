package smtpd

import (
	"strings"
	"testing"
	"unicode/utf8"
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
// put in a header and a record: valid UTF-8, no controls, one '@', a
// domain that validates again.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"a@example.org", "~o/l+s@lists.example.org", "a@[IPv6:::1]", "\"a@b\"@c", "a%b@c", "ü@ü.de"} {
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
	})
}
