package address_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"mxq/address"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, addr string
		want          bool
	}{
		{"announce@lists.example.org", "announce@lists.example.org", true},
		{"announce@lists.example.org", "ANNOUNCE@Lists.Example.ORG", true},
		{"announce@lists.example.org", "announce+subscribe@lists.example.org", true},
		{"announce@lists.example.org", "announcer@lists.example.org", false},
		{"~*/*@lists.example.org", "~sircmpwn/sr.ht-dev@lists.example.org", true},
		{"~*/*@lists.example.org", "~sircmpwn/sr.ht-dev+subscribe@lists.example.org", true},
		{"~*/*@lists.example.org", "~a/b/c@lists.example.org", false},
		{"~*/*@lists.example.org", "~owner/list@other.example.org", false},
		{"~*/*@lists.example.org", "owner/list@lists.example.org", false},
		{"u.*.*@lists.example.org", "u.owner.list@lists.example.org", true},
		{"*@lists.example.org", "x@y@lists.example.org", false},
		{"*@*.example.org", "x@lists.example.org", true},
		{"~*/*@lists.example.org", "~jürgen/liste@lists.example.org", true},
		{"~jürgen/liste@lists.example.org", "~JüRGEN/Liste@lists.example.org", true},
		{"a?c@lists.example.org", "aüc@lists.example.org", true},

		// '*' and '?' match at least one character, never '/' or '@'.
		{"~*/*@lists.example.org", "~/x@lists.example.org", false},
		{"~*/*@lists.example.org", "~a/@lists.example.org", false},
		{"~*/*@lists.example.org", "~/@lists.example.org", false},
		{"*@lists.example.org", "@lists.example.org", false},
		{"*@*", "a@", false},
		{"a*@lists.example.org", "a@lists.example.org", false},
		{"a*b@lists.example.org", "ab@lists.example.org", false},
		{"a*b@lists.example.org", "axb@lists.example.org", true},
		{"a*b*c@lists.example.org", "abbbcbc@lists.example.org", true},
		{"a?@lists.example.org", "a@lists.example.org", false},
		{"a?b@lists.example.org", "a/b@lists.example.org", false},

		// Only ASCII letters fold: no non-ASCII character matches an
		// ASCII one.
		{"post@lists.example.org", "post@lİsts.example.org", false},      // U+0130
		{"post@lists.example.org", "post@lısts.example.org", false},      // U+0131
		{"~k/x@lists.example.org", "~\u212a/x@lists.example.org", false}, // KELVIN SIGN
		{"~*/*@lists.example.org", "~a/b@lists.example.\u212aorg", false},
		{"post@lists.example.org", "po\u017ft@lists.example.org", false}, // LONG S
		{"~ß/x@lists.example.org", "~ẞ/x@lists.example.org", false},
		{"*@lists.example.org", "\xff@lists.example.org", false},
	}
	for _, tt := range tests {
		if got := address.Match(tt.pattern, tt.addr); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.addr, got, tt.want)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	tests := []struct{ in, want string }{ // want "" for refused
		{"~*/*@lists.example.org", "~*/*@lists.example.org"},
		{" Announce@Lists.Example.ORG\n", "announce@lists.example.org"},
		{"u.*.*@lists.example.org", "u.*.*@lists.example.org"},
		{"~JÜRGEN/x@lists.example.org", "~jÜrgen/x@lists.example.org"},
		{"~\u212a/x@lists.example.org", "~\u212a/x@lists.example.org"},
		{"*@*.example.org", "*@*.example.org"},

		{"", ""},
		{"not an address", ""},
		{"@lists.example.org", ""},
		{"a@", ""},
		{"a@b@lists.example.org", ""},
		{"~a/@lists.example.org", ""},
		{"~a//b@lists.example.org", ""},
		{"~../..@lists.example.org", ""},
		{"~a/./b@lists.example.org", ""},
		{"~a/../b@lists.example.org", ""},
		{".a@lists.example.org", ""},
		{"a.@lists.example.org", ""},
		{"a..b@lists.example.org", ""},
		{"a@lists..example.org", ""},
		{"a@.lists.example.org", ""},
		{"a@lists.example.org.", ""},
		{"a@lists_example.org", ""},
		{"a@lists/example.org", ""},
		{"a b@lists.example.org", ""},
		{"a\u00a0b@lists.example.org", ""}, // no-break space
		{"a\u2003b@lists.example.org", ""}, // em space
		{"a\u200bb@lists.example.org", ""}, // zero width space (Cf)
		{"a\u202eb@lists.example.org", ""}, // right-to-left override
		{"a\ufeffb@lists.example.org", ""},
		{"a\u0085b@lists.example.org", ""}, // NEL
		{"a\x00b@lists.example.org", ""},
		{"a\u3164@lists.example.org", ""}, // Hangul filler
		{"a\ufe0f@lists.example.org", ""}, // variation selector
		{"a@lists\u00a0example.org", ""},
		{"\xff@lists.example.org", ""},
		{"[a]@lists.example.org", ""},
		{"a\\*@lists.example.org", ""},
		{"<a@lists.example.org>", ""},
		{`"a"@lists.example.org`, ""},
	}
	for _, tt := range tests {
		got, err := address.NormalizePattern(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzMatch checks Match against a regular expression built from the
// pattern (on ASCII-lowered strings, so no other folding can happen), and
// that a pattern without wildcards matches only the same bytes but for
// ASCII case.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"~*/*@lists.example.org", "~o/l@lists.example.org"},
		{"~*/*@lists.example.org", "~/x@lists.example.org"},
		{"~*/*@lists.example.org", "~a/@lists.example.org"},
		{"~*/*@lists.example.org", "~../..@lists.example.org"},
		{"~k/x@lists.example.org", "~\u212a/x@lists.example.org"},
		{"post@lists.example.org", "post@lİsts.example.org"},
		{"post@lists.example.org", "POST+1@lists.example.org"},
		{"u.*.*@lists.example.org", "u.a.b.c@lists.example.org"},
		{"a*b?c@*.example.org", "aXbüc@x.example.org"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, addr string) {
		got := address.Match(pattern, addr)
		if !utf8.ValidString(pattern) || !utf8.ValidString(addr) {
			if got {
				t.Fatalf("Match(%q, %q): invalid UTF-8 matched", pattern, addr)
			}
			return
		}
		lp, la := asciiLower(pattern), asciiLower(addr)
		want := refMatch(lp, la)
		if base, ok := baseAddress(la); ok && !want {
			want = refMatch(lp, base)
		}
		if got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, addr, got, want)
		}
		if got && !strings.ContainsAny(pattern, "*?") {
			base, _ := baseAddress(la)
			if lp != la && lp != base {
				t.Fatalf("Match(%q, %q): a literal entry matched other bytes", pattern, addr)
			}
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// refMatch is the pattern language as a regular expression: local part
// and domain each have one '@'-free part; '*' is one or more characters
// other than '/' and '@', '?' one; every part between '/' is non-empty.
func refMatch(pattern, addr string) bool {
	pl, pd, ok := strings.Cut(pattern, "@")
	al, ad, ok2 := strings.Cut(addr, "@")
	if !ok || !ok2 || strings.ContainsAny(pd+ad, "@/") {
		return false
	}
	for _, part := range strings.Split(al, "/") {
		if part == "" {
			return false
		}
	}
	if ad == "" {
		return false
	}
	var re strings.Builder
	re.WriteString(`^(?s)`)
	for _, r := range pl + "@" + pd {
		switch r {
		case '*':
			re.WriteString(`[^/@]+`)
		case '?':
			re.WriteString(`[^/@]`)
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString(`$`)
	return regexp.MustCompile(re.String()).MatchString(addr)
}

// baseAddress drops a "+tag" subaddress from the local part.
func baseAddress(addr string) (string, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", false
	}
	plus := strings.IndexByte(addr[:at], '+')
	if plus <= 0 {
		return "", false
	}
	return addr[:plus] + addr[at:], true
}
