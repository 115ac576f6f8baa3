package dnsctl

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

func TestParseKey(t *testing.T) {
	const secret = "9R72ekJjX8uAugNL1Z4GWEhDn27wNXK5P7vIboMvytA="
	for _, tc := range []struct {
		name, text string
		want       *Key
		err        string
	}{
		{"tsig-keygen", "key \"mxq-test\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + secret + "\";\n};\n",
			&Key{Name: "mxq-test.", Algorithm: dns.HmacSHA256, Secret: secret, File: "k"}, ""},
		{"sha512 and comments", "# made by hand\nkey \"Upd.Example.\" { // the key\n algorithm hmac-sha512; /* long\n */ secret \"" + secret + "\"; };",
			&Key{Name: "upd.example.", Algorithm: dns.HmacSHA512, Secret: secret, File: "k"}, ""},
		{"sha1", `key k { algorithm HMAC-SHA1; secret "` + secret + `"; };`,
			&Key{Name: "k.", Algorithm: dns.HmacSHA1, Secret: secret, File: "k"}, ""},
		{"default algorithm", `key k { secret "` + secret + `"; };`,
			&Key{Name: "k.", Algorithm: dns.HmacSHA256, Secret: secret, File: "k"}, ""},
		{"empty", "", nil, "k: no key statement"},
		{"md5", "key k {\n algorithm hmac-md5;\n secret \"" + secret + "\"; };", nil, `k:2: algorithm "hmac-md5" not supported`},
		{"bad secret", "key k {\n\n secret \"not base64!\"; };", nil, "k:3: secret is not base64"},
		{"no secret", "key k {\n algorithm hmac-sha256;\n};", nil, `k:3: key "k" has no secret`},
		{"unknown clause", "key k {\n colour blue; };", nil, `k:2: unknown clause "colour"`},
		{"missing semicolon", "key k {\n secret \"" + secret + "\"\n};", nil, `k:3: ";" expected, found "}"`},
		{"truncated", "key k {\n secret \"" + secret + "\";\n", nil, `k:2: file ends inside key`},
		{"two keys", "key a { secret \"" + secret + "\"; };\nkey b { secret \"" + secret + "\"; };", nil, `k:2: a key file must hold one key`},
		{"unclosed string", "key \"k {\n", nil, "k:1: string not closed"},
		{"not a key", "options { };", nil, `k:1: "key" expected, found "options"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey("k", tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("key \"a\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };")
	f.Add("/* x */ key a { secret \"\"; };")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKey("f", text)
		if err == nil && (k.Secret == "" || k.Name == "") {
			t.Errorf("accepted a key without name or secret: %+v", k)
		}
	})
}
