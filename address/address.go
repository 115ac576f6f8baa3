package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold returns addr as the registry compares it: ASCII letters lowered,
// every other byte unchanged.
func Fold(addr string) string {
	for i := 0; i < len(addr); i++ {
		if 'A' <= addr[i] && addr[i] <= 'Z' {
			b := []byte(addr)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return addr
}

// SameAddress reports whether a and b are one address to the registry:
// equal but for the case of ASCII letters.
func SameAddress(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Invisible reports whether r has no place in an address even where
// UTF-8 is allowed (RFC 6531): white space (U+00A0, U+2003, …), controls,
// format characters (U+200B, U+202E, U+FEFF, …), other default-ignorable
// code points, variation selectors, private use, noncharacters and
// U+FFFD. Such an address looks like another one, or is split
// differently by software downstream.
func Invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) ||
		unicode.In(r, unicode.Cf, unicode.Co, unicode.Z, unicode.Other_Default_Ignorable_Code_Point,
			unicode.Variation_Selector, unicode.Noncharacter_Code_Point) ||
		r == utf8.RuneError
}

// NormalizePattern checks an address or pattern and returns it with ASCII
// letters lowered (Fold). A pattern is an address in which '*' matches one
// or more characters other than '/' and '@', and '?' exactly one:
// "~*/*@lists.example.org" matches every list of every owner at
// lists.example.org, and neither "~/x@…" nor "~a/@…".
//
// Every part must be there: no empty local part, domain, domain label or
// '/'-separated part, no "." or ".." part, and the local part is a
// dot-string (RFC 5321 §4.1.2: no leading, trailing or double dot). White
// space, controls and other invisible characters (Invisible) and the
// RFC 5322 specials other than '.' and '@' are refused.
func NormalizePattern(p string) (string, error) {
	p = Fold(strings.TrimSpace(p))
	if err := checkPattern(p); err != nil {
		return "", fmt.Errorf("recipient %q: %w", p, err)
	}
	return p, nil
}

var (
	errPatternForm = errors.New("want local@domain (a pattern may use * and ?)")
	errPatternChar = errors.New(`contains a space, control or invisible character, one of ()<>[]:;,\" or, in the domain, a character other than letters, digits, '-', '.', '*' and '?'`)
	errPatternPart = errors.New(`empty, "." or ".." part, or a leading, trailing or double dot`)
)

func checkPattern(p string) error {
	local, domain, ok := strings.Cut(p, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return errPatternForm
	}
	if !utf8.ValidString(p) {
		return errPatternChar
	}
	for _, r := range p {
		if Invisible(r) || strings.ContainsRune(`()<>[]:;,\"`, r) {
			return errPatternChar
		}
	}
	for _, r := range domain {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= 0x80 || strings.ContainsRune("-.*?", r)) {
			return errPatternChar
		}
	}
	if !WellFormedLocal(local) || !dotString(domain) {
		return errPatternPart
	}
	return nil
}

// WellFormedLocal reports whether local, the local part of a list
// address or pattern, is a dot-string (RFC 5321 §4.1.2: no leading,
// trailing or double dot) and has no empty, "." or ".." part between
// '/' ("~owner/list"), which software downstream might take for a path.
func WellFormedLocal(local string) bool {
	if !dotString(local) {
		return false
	}
	for _, part := range strings.Split(local, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// dotString reports whether s has no leading, trailing or double dot.
func dotString(s string) bool {
	return s != "" && s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}

// Match reports whether addr matches the registry entry pattern (see
// NormalizePattern). ASCII letters compare without regard to case, every
// other character byte for byte; a subaddress ("list+tag") also matches
// an entry for the base address ("list").
func Match(pattern, addr string) bool {
	if !utf8.ValidString(pattern) || !utf8.ValidString(addr) {
		return false
	}
	pattern, addr = Fold(pattern), Fold(addr)
	if matchOne(pattern, addr) {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	if plus := strings.IndexByte(addr[:max(at, 0)], '+'); plus > 0 {
		return matchOne(pattern, addr[:plus]+addr[at:])
	}
	return false
}

// matchOne matches the local part and the domain separately, the local
// part '/'-separated part by part: a wildcard never spans '@' or '/',
// the owner/list split of "~owner/list" addresses.
func matchOne(pattern, addr string) bool {
	pl, pd, ok := strings.Cut(pattern, "@")
	al, ad, ok2 := strings.Cut(addr, "@")
	if !ok || !ok2 || strings.ContainsAny(pd, "@/") || strings.ContainsAny(ad, "@/") || !globPart(pd, ad) {
		return false
	}
	for {
		pp, prest, pmore := strings.Cut(pl, "/")
		ap, arest, amore := strings.Cut(al, "/")
		if pmore != amore || !globPart(pp, ap) {
			return false
		}
		if !pmore {
			return true
		}
		pl, al = prest, arest
	}
}

// globPart matches s, which holds no '/', against p: '*' matches one or
// more characters, '?' exactly one, any other byte itself. An empty s
// never matches. The last '*' seen takes one more character at each
// mismatch, so the cost is at most len(p)·len(s).
func globPart(p, s string) bool {
	if s == "" {
		return false
	}
	i, j := 0, 0
	star, starS := -1, 0 // after the last '*' in p, and where in s its run ends
	for j < len(s) {
		_, n := utf8.DecodeRuneInString(s[j:])
		switch {
		case i < len(p) && p[i] == '*':
			i, j = i+1, j+n
			star, starS = i, j
		case i < len(p) && p[i] == '?':
			i, j = i+1, j+n
		case i < len(p) && p[i] == s[j]:
			i, j = i+1, j+1
		case star >= 0:
			_, n := utf8.DecodeRuneInString(s[starS:])
			starS += n
			i, j = star, starS
		default:
			return false
		}
	}
	return i == len(p)
}
