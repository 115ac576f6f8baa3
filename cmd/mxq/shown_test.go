package main

import "testing"

func TestShown(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"mail.example.org", "mail.example.org"},
		{"grüße.example", "grüße.example"},
		{"\x1b]0;owned\x07x.example", `\x1b]0;owned\x07x.example`},
		{"a\r\nb\tc\x7f", `a\x0d\x0ab\x09c\x7f`},
		{"\xc3(", `\xc3(`},
		{"\u009b31m", `\xc2\x9b31m`},
	} {
		if got := shown(tt.in); got != tt.want {
			t.Errorf("shown(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
