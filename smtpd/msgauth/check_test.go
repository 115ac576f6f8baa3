package msgauth

import (
	"bytes"
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// verdict is the part of a Result a case checks; the header is compared
// with its golden file.
type verdict struct {
	SPF, DKIM, DMARC, IPRev string
	DMARCPolicy             string
	SPFAligned, DKIMAligned bool
	Signatures              []string // Result of each signature, in order
	DKIMSkipped             int
	TempError               bool
	FromError               bool // DMARC permerror because of the From fields
}

func verdictOf(r Result) verdict {
	v := verdict{SPF: r.SPF, DKIM: r.DKIM, DMARC: r.DMARC, IPRev: r.IPRev,
		DMARCPolicy: r.DMARCPolicy, SPFAligned: r.SPFAligned, DKIMAligned: r.DKIMAligned,
		DKIMSkipped: r.DKIMSkipped, TempError: r.TempError, FromError: r.FromError != ""}
	for _, s := range r.DKIMSignatures {
		v.Signatures = append(v.Signatures, s.Result)
	}
	return v
}

var (
	client = netip.MustParseAddr("127.0.0.2")
	helo   = "mail.example.test"
)

type checkCase struct {
	name string
	in   func(t testing.TB, e *env) Input
	want verdict
}

// TestCheck runs every check against the zones of testZones served by a
// real named, and compares each Result and its header (testdata/check/
// NAME.golden, with -update to rewrite).
func TestCheck(t *testing.T) {
	e := newEnv(t, Defaults())
	cases := append(append(append(spfCases(), dkimCases()...), dmarcCases()...), iprevCases()...)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res := e.checker.Check(context.Background(), tt.in(t, e))
			if diff := cmp.Diff(tt.want, verdictOf(res)); diff != "" {
				t.Errorf("verdict (-want +got)\n%s", diff)
			}
			checkHeader(t, res)
			golden(t, filepath.Join("testdata", "check", fileName(tt.name)+".golden"),
				[]byte(normalizeB(res.Header)))
		})
	}
}

// checkHeader parses the header with go-msgauth and checks that it says
// what the Result says, line lengths included.
func checkHeader(t *testing.T, res Result) {
	t.Helper()
	name, value, ok := strings.Cut(res.Header, ":")
	if !ok || name != "Authentication-Results" || !strings.HasSuffix(value, "\r\n") {
		t.Fatalf("not a header field: %q", res.Header)
	}
	for _, line := range strings.Split(strings.TrimSuffix(res.Header, "\r\n"), "\r\n") {
		if len(line) > maxLine+8 || strings.ContainsAny(line, "\r\n") {
			t.Errorf("line %q: too long or broken", line)
		}
	}
	unfolded := strings.ReplaceAll(strings.TrimSuffix(value, "\r\n"), "\r\n", "")
	id, results, err := authres.Parse(unfolded)
	if err != nil {
		t.Fatalf("authres.Parse(%q): %v", unfolded, err)
	}
	if id != authservID {
		t.Errorf("authserv-id %q, want %q", id, authservID)
	}
	got := map[string][]string{}
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			got["spf"] = append(got["spf"], string(r.Value))
		case *authres.IPRevResult:
			got["iprev"] = append(got["iprev"], string(r.Value))
		case *authres.DKIMResult:
			got["dkim"] = append(got["dkim"], string(r.Value))
		case *authres.DMARCResult:
			got["dmarc"] = append(got["dmarc"], string(r.Value))
		default:
			t.Errorf("unexpected result %#v", r)
		}
	}
	want := map[string][]string{"spf": {res.SPF}, "iprev": {res.IPRev}, "dmarc": {res.DMARC}}
	for _, s := range res.DKIMSignatures {
		want["dkim"] = append(want["dkim"], s.Result)
	}
	if len(res.DKIMSignatures) == 0 {
		want["dkim"] = []string{None}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("header results (-want +got)\n%s", diff)
	}
}

// normalizeB replaces header.b values, which change with the keys each run
// generates, so that the golden files stay stable.
func normalizeB(h string) string {
	return regexp.MustCompile(`header\.b=("[^"]*"|[^\s;]+)`).ReplaceAllString(h, "header.b=SIGNATURE")
}

func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
}

// golden compares got with the file at path, or writes it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s (-want +got)\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

// plain is a message from a@example.test from the usual client, unsigned.
func plain(mailFrom, from string) func(t testing.TB, e *env) Input {
	return func(t testing.TB, e *env) Input {
		return Input{IP: client, HELO: helo, MailFrom: mailFrom, Message: message(from)}
	}
}

func spfCases() []checkCase {
	// From a domain without DMARC record, so that only SPF varies.
	const from = "a@nodmarc.test"
	spf := func(name, mailFrom, result string, temp bool) checkCase {
		return checkCase{name: "spf " + name, in: plain(mailFrom, from),
			want: verdict{SPF: result, DKIM: None, DMARC: None, IPRev: Pass, TempError: temp}}
	}
	return []checkCase{
		spf("pass", "bounce@example.test", Pass, false),
		spf("pass by a", "bounce@mail.example.test", Pass, false),
		spf("fail", "bounce@fail.example.test", Fail, false),
		spf("softfail", "bounce@softfail.example.test", SoftFail, false),
		spf("neutral", "bounce@neutral.example.test", Neutral, false),
		spf("none", "bounce@nospf.example.test", None, false),
		spf("no such domain", "bounce@nx.example.test", None, false),
		spf("include", "bounce@include.example.test", Pass, false),
		spf("lookup limit", "bounce@limit.example.test", PermError, false),
		spf("void lookup limit", "bounce@void.example.test", PermError, false),
		spf("multiple records", "bounce@multiple.example.test", PermError, false),
		spf("temperror", "bounce@broken.test", TempError, true),
		spf("temperror in include", "bounce@tempinc.example.test", TempError, true),
		spf("uppercase domain", "Bounce@EXAMPLE.TEST", Pass, false),
		spf("quoted local part with at", `"a@b"@example.test`, Pass, false),
		{name: "spf null sender checks helo", in: func(t testing.TB, e *env) Input {
			return Input{IP: client, HELO: "mail.example.test", Message: message(from)}
		}, want: verdict{SPF: Pass, DKIM: None, DMARC: None, IPRev: Pass}},
		{name: "spf null sender with address literal helo", in: func(t testing.TB, e *env) Input {
			return Input{IP: client, HELO: "[127.0.0.2]", Message: message(from)}
		}, want: verdict{SPF: None, DKIM: None, DMARC: None, IPRev: Pass}},
		{name: "spf other client", in: func(t testing.TB, e *env) Input {
			return Input{IP: netip.MustParseAddr("127.0.0.3"), HELO: helo,
				MailFrom: "bounce@example.test", Message: message(from)}
		}, want: verdict{SPF: Fail, DKIM: None, DMARC: None, IPRev: Fail}},
	}
}
