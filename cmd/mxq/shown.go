package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// shown is s as it may be written to an operator's terminal: what a
// client chose (its HELO name, its envelope addresses) and what a
// destination answered are printed as they are, except control
// characters and bytes that are not UTF-8, written as \xNN. An escape
// sequence in a HELO name would otherwise reach the terminal and act on
// it (move the cursor, rewrite the line above, set the window's title).
func shown(s string) string {
	clean := func(r rune) bool { return r == utf8.RuneError || unicode.IsControl(r) }
	if strings.IndexFunc(s, clean) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if clean(r) {
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
