package msgauth

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// TestStripForged strips testdata/strip/NAME.eml and compares the result
// with NAME.golden (-update rewrites it).
func TestStripForged(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "strip", "*.eml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".eml")
		t.Run(name, func(t *testing.T) {
			msg, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			orig := bytes.Clone(msg)
			got := StripForged(msg, authservID)
			if !bytes.Equal(msg, orig) {
				t.Error("StripForged changed its input")
			}
			checkStripped(t, orig, got)
			golden(t, strings.TrimSuffix(in, ".eml")+".golden", got)
		})
	}
}

// checkStripped checks the invariants of StripForged: got is msg with
// whole fields removed, none of them another authserv-id's, none of ours
// left, and stripping again changes nothing.
func checkStripped(t *testing.T, msg, got []byte) {
	t.Helper()
	fields, _, _ := headerFields(msg)
	var kept []byte
	for _, f := range fields {
		if !forged(msg, f, authservID) {
			kept = append(kept, msg[f.start:f.end]...)
		}
	}
	kept = append(kept, msg[fieldsEnd(fields):]...) // the empty line and the body
	if !bytes.Equal(kept, got) {
		t.Errorf("got %q, want %q", got, kept)
	}
	if again := StripForged(got, authservID); !bytes.Equal(again, got) {
		t.Errorf("stripping twice removed more: %q", again)
	}
}

func fieldsEnd(fields []field) int {
	if len(fields) == 0 {
		return 0
	}
	return fields[len(fields)-1].end
}

func TestAuthservIDOf(t *testing.T) {
	tests := []struct{ value, want string }{
		{"mx.lists.test; dkim=pass", "mx.lists.test"},
		{"mx.lists.test;dkim=pass", "mx.lists.test"},
		{"  mx.lists.test 1; spf=pass", "mx.lists.test"},
		{"(c) mx.lists.test; none", "mx.lists.test"},
		{"(a (b) \\) c) mx.lists.test; none", "mx.lists.test"},
		{`"mx.lists.test"; none`, "mx.lists.test"},
		{`"mx.li\"sts"; none`, `mx.li"sts`},
		{`"unterminated; none`, ""},
		{"(unterminated mx.lists.test; none", ""},
		{"mx.lists.test(c); none", "mx.lists.test"},
		{"", ""},
		{"; none", ""},
	}
	for _, tt := range tests {
		if got := authservIDOf(tt.value); got != tt.want {
			t.Errorf("authservIDOf(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

// FuzzStripForged checks the invariants on any input.
func FuzzStripForged(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "strip", "*.eml"))
	for _, in := range inputs {
		if msg, err := os.ReadFile(in); err == nil {
			f.Add(msg)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkStripped(t, msg, StripForged(msg, authservID))
	})
}

func TestClaims(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"mx.lists.test; dkim=pass", true},
		{"MX.LISTS.TEST; dkim=pass", true},
		{"(c) mx.lists.test 1; dkim=pass", true},
		{`"mx.lists.test"; none`, true},
		{"(unterminated mx.lists.test; none", true},
		{"other.test (via mx.lists.test); none", true},
		{"other.test; dkim=pass (mx.lists.test)", false},
		{"mx.lists.test.evil.test; none", false},
		{"evil.mx.lists.test; none", false},
		{"other.test; dkim=pass header.d=mx.lists.test", false},
		// Whitespace to go-msgauth (unicode.IsSpace), not to RFC 8601.
		{"\vmx.lists.test\v; dkim=pass", true},
		{"\fmx.lists.test\f; dkim=pass", true},
		{"\u00a0mx.lists.test\u00a0; dkim=pass", true},
		{"\u2003mx.lists.test\u2003; dkim=pass", true},
		{"other.test\u2003mx.lists.test; dkim=pass", true},
		{"\u0085mx.lists.test; dkim=pass", true},
		// Other separators of naive parsers: controls, format characters,
		// 0xA0 read as Latin-1, tspecials.
		{"\x01mx.lists.test\x1f; dkim=pass", true},
		{"\u200bmx.lists.test\ufeff; dkim=pass", true},
		{"\xa0mx.lists.test\xa0; dkim=pass", true},
		{"other.test/mx.lists.test; dkim=pass", true},
		{"\u00e9mx.lists.test.evil; dkim=pass", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := claims(tt.value, authservID); got != tt.want {
			t.Errorf("claims(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

// FuzzClaimsAuthres checks StripForged against go-msgauth's parser, which
// consumers of our header use: whatever value of a field it reads our
// authserv-id in, that field must be removed. The consumer's view is the
// field as net/mail reads it.
func FuzzClaimsAuthres(f *testing.F) {
	for _, v := range []string{
		"mx.lists.test; dkim=pass",
		"\vmx.lists.test\v; dkim=pass",
		"\u00a0mx.lists.test\u2003; dkim=pass",
		"(c) \"mx.lists.test\" 1; spf=pass",
		"other.test; dkim=pass header.d=mx.lists.test",
		"mx.lists.test\r\n\t; dkim=pass",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		msg := "Authentication-Results: " + v + "\r\nFrom: a@example.test\r\n\r\nbody\r\n"
		if id, _, _ := authres.Parse(v); id == authservID {
			if got := StripForged([]byte(msg), authservID); bytes.Contains(got, []byte(v)) {
				t.Errorf("value %q is ours to go-msgauth, kept:\n%q", v, got)
			}
		}
		m, err := mail.ReadMessage(bytes.NewReader(StripForged([]byte(msg), authservID)))
		if err != nil {
			return // no field a consumer could read
		}
		for _, value := range m.Header["Authentication-Results"] {
			if id, _, _ := authres.Parse(value); strings.EqualFold(id, authservID) {
				t.Errorf("value %q: a consumer reads our id in %q", v, value)
			}
		}
	})
}
