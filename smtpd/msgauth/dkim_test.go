package msgauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/google/go-cmp/cmp"
)

// hashBomb is the message of a sender who makes go-msgauth's work grow
// with n × m: one signature whose h= lists X-A n times (and From), over m
// X-A fields. Its body hash is right and its key (ed._domainkey.
// nodmarc.test) exists, so go-msgauth gets as far as hashing the header
// fields; only b= is wrong. h= is folded, 250 entries a line, as SMTP's
// line limit makes a sender do.
func hashBomb(n, m int) []byte {
	body := "Hello, list.\r\n" // message's body, the same in relaxed form
	bh := sha256.Sum256([]byte(body))
	var b bytes.Buffer
	b.WriteString("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=nodmarc.test; s=ed;\r\n\th=")
	for i := range n {
		if i > 0 && i%250 == 0 {
			b.WriteString("\r\n\t")
		}
		b.WriteString("x-a:")
	}
	fmt.Fprintf(&b, "from; bh=%s;\r\n\tb=%s\r\n",
		base64.StdEncoding.EncodeToString(bh[:]), base64.StdEncoding.EncodeToString(make([]byte, 64)))
	b.WriteString(strings.Repeat("X-A: a\r\n", m))
	b.Write(message("a@nodmarc.test"))
	return b.Bytes()
}

// signOver returns msg with an Ed25519 signature of nodmarc.test prepended
// whose h= is keys.
func (e *env) signOver(t testing.TB, msg []byte, keys ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: "nodmarc.test", Selector: "ed", Signer: e.edKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestDKIMLimits checks that go-msgauth never sees a signature over
// maxSignedFields or a header over maxHeaderLines, that each such
// signature is permerror for the stated reason, and that the message's
// other signatures are verified as before.
func TestDKIMLimits(t *testing.T) {
	e := newEnv(t, Defaults())
	linesCap := func(n, m int) string {
		return fmt.Sprintf("header has %d lines, more than %d", bytes.Count(hashBomb(n, m), []byte("\n"))-1, maxHeaderLines)
	}
	hCap := func(n int) string { return fmt.Sprintf("h= lists %d header fields, more than %d", n, maxSignedFields) }
	type sig struct{ Result, Reason string }
	tests := []struct {
		name string
		msg  func(t *testing.T) []byte
		want []sig
	}{
		// The attack as reported: 40,000 × 40,000, a minute of CPU before.
		{"40000 entries over 40000 fields", func(*testing.T) []byte { return hashBomb(40000, 40000) },
			[]sig{{PermError, linesCap(40000, 40000)}}},
		{"40000 entries over few fields", func(*testing.T) []byte { return hashBomb(40000, 5) },
			[]sig{{PermError, hCap(40001)}}},
		{"entries at the cap are verified", func(*testing.T) []byte { return hashBomb(maxSignedFields-1, 5) },
			[]sig{{Fail, "signature did not verify"}}},
		{"one entry over the cap", func(*testing.T) []byte { return hashBomb(maxSignedFields, 5) },
			[]sig{{PermError, hCap(maxSignedFields + 1)}}},
		{"header lines over the cap", func(*testing.T) []byte { return hashBomb(1, maxHeaderLines) },
			[]sig{{PermError, linesCap(1, maxHeaderLines)}}},
		{"a good signature next to one over the cap", func(t *testing.T) []byte {
			return e.signOver(t, hashBomb(40000, 5), "From", "To", "Subject")
		}, []sig{{Pass, ""}, {PermError, hCap(40001)}}},
		{"a signature over one over the cap", func(t *testing.T) []byte {
			return e.signOver(t, hashBomb(40000, 5), "From", "DKIM-Signature")
		}, []sig{{PermError, "h= covers a signature over the h= cap"}, {PermError, hCap(40001)}}},
		{"a good signature between", func(t *testing.T) []byte {
			good := e.signOver(t, hashBomb(40000, 5), "From")
			return e.signOver(t, good, "From", "DKIM-Signature")
		}, []sig{{PermError, "h= covers a signature over the h= cap"}, {Pass, ""}, {PermError, hCap(40001)}}},
		{"a signature over a good one", func(t *testing.T) []byte {
			return e.signOver(t, e.signOver(t, message("a@nodmarc.test"), "From"), "From", "DKIM-Signature")
		}, []sig{{Pass, ""}, {Pass, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{IP: client, HELO: helo, MailFrom: "a@nodmarc.test", Message: tt.msg(t)}
			var got []sig
			for _, s := range e.checker.Check(context.Background(), in).DKIMSignatures {
				reason, _, _ := strings.Cut(strings.TrimPrefix(s.Reason, "dkim: "), ":") // go-msgauth's detail aside
				got = append(got, sig{s.Result, reason})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("signatures (-want +got)\n%s", diff)
			}
		})
	}
}

// TestDKIMDeadline holds go-msgauth up past the Checker's timeout: Check
// returns temperror for the signature, and the verification left running
// reads no more of the message.
func TestDKIMDeadline(t *testing.T) {
	e := newEnv(t, Defaults())
	cfg := Defaults()
	cfg.AuthservID, cfg.Resolver, cfg.Timeout = authservID, e.checker.resolver, 100*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	release, after := make(chan struct{}), make(chan []byte, 1)
	c.verify = func(r io.Reader, opts *dkim.VerifyOptions) ([]*dkim.Verification, error) {
		<-release
		rest, _ := io.ReadAll(r)
		after <- rest
		return nil, nil
	}
	in := signed("a@nodmarc.test", "a@nodmarc.test", nil, "nodmarc.test", "ed")(t, e)
	res := c.Check(context.Background(), in)
	close(release)
	if len(res.DKIMSignatures) != 1 || res.DKIM != TempError || !res.TempError ||
		!strings.Contains(res.DKIMSignatures[0].Reason, "not finished in time") {
		t.Errorf("got dkim=%s, signatures %+v; want one temperror, not finished in time", res.DKIM, res.DKIMSignatures)
	}
	if rest := <-after; len(rest) > 0 {
		t.Errorf("the verification read %d bytes of the message after Check returned", len(rest))
	}
}

// BenchmarkDKIMSignedFields measures the DKIM check of hashBomb(n, n) by
// Check, whose caps stop it, and by go-msgauth alone, whose work grows with
// n²; ns/op against n shows both. check/worst is the most work the caps
// let through: as many entries and lines as they allow.
func BenchmarkDKIMSignedFields(b *testing.B) {
	e := newEnv(b, Config{})
	ctx := context.Background()
	worst := Input{IP: client, HELO: helo, MailFrom: "a@nodmarc.test",
		Message: hashBomb(maxSignedFields-1, maxHeaderLines-10)}
	if r := e.checker.Check(ctx, worst); r.DKIM != Fail {
		b.Fatalf("check/worst: dkim=%s, want fail (verified)", r.DKIM)
	}
	b.Run("check/worst", func(b *testing.B) {
		for b.Loop() {
			e.checker.Check(ctx, worst)
		}
	})
	for _, n := range []int{16, 64, 256, 1024, 4096, 40000} {
		in := Input{IP: client, HELO: helo, MailFrom: "a@nodmarc.test", Message: hashBomb(n, n)}
		b.Run(fmt.Sprintf("check/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				e.checker.Check(ctx, in)
			}
		})
		if n > 4096 {
			continue // a minute or more per message
		}
		opts := &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
			return e.checker.resolver.LookupTXT(ctx, name)
		}}
		b.Run(fmt.Sprintf("go-msgauth/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				dkim.VerifyWithOptions(bytes.NewReader(in.Message), opts)
			}
		})
	}
}
