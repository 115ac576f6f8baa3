package msgauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// dkimSig is a signature's verdict while Check assembles the Result.
type dkimSig struct {
	DKIMSignature
	b string // the whole b= value, to choose a unique header.b prefix
}

// hasSignature reports whether a header has a DKIM-Signature field.
func hasSignature(fields []field) bool {
	for _, f := range fields {
		if strings.EqualFold(strings.TrimSpace(f.name), "DKIM-Signature") {
			return true
		}
	}
	return false
}

// checkDKIM verifies the first maxSigs DKIM-Signature fields of the
// header section msg (RFC 6376 §6) with go-msgauth over msg and the body
// as it is read from body, its key lookups through our resolver, and
// returns a verdict per verified signature and the number not verified.
func (c *Checker) checkDKIM(ctx context.Context, msg []byte, fields []field, body io.Reader) ([]dkimSig, int) {
	var sigs []dkimSig
	for _, f := range fields {
		if strings.EqualFold(strings.TrimSpace(f.name), "DKIM-Signature") {
			sigs = append(sigs, parseSignature(f.value(msg)))
		}
	}
	if len(sigs) == 0 {
		return nil, 0
	}
	skipped := 0
	if len(sigs) > c.maxSigs {
		skipped = len(sigs) - c.maxSigs
		sigs = sigs[:c.maxSigs]
	}
	opts := &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return c.resolver.LookupTXT(ctx, name) },
		MaxVerifications: c.maxSigs,
	}
	verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(msg), body), opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// Not a verdict on a signature but a failure to run: go-msgauth
		// then clears one verification's error, so trust none of them.
		for i := range sigs {
			sigs[i].Result, sigs[i].Reason = TempError, "verifier: "+err.Error()
		}
		return sigs, skipped
	}
	for i := range sigs {
		if i >= len(verifs) {
			sigs[i].Result, sigs[i].Reason = PermError, "not verified"
			continue
		}
		v := verifs[i]
		if v.Domain != "" && !strings.EqualFold(v.Domain, sigs[i].Domain) {
			// Our split of the header disagrees with the verifier's:
			// never attribute a verdict to the wrong signature.
			sigs[i].Result, sigs[i].Reason = PermError, "signature order mismatch"
			continue
		}
		sigs[i].Result = dkimResult(v.Err)
		if v.Err != nil {
			sigs[i].Reason = v.Err.Error()
		}
	}
	uniqueB(sigs)
	return sigs, skipped
}

// dkimResult maps go-msgauth's error classes to RFC 8601 §2.7.1 results.
func dkimResult(err error) string {
	switch {
	case err == nil:
		return Pass
	case dkim.IsTempFail(err):
		return TempError
	case dkim.IsPermFail(err):
		return PermError
	}
	return Fail // the signature or the body hash did not verify
}

// parseSignature reads the tags Result reports from a DKIM-Signature value
// (RFC 6376 §3.5); verification itself is go-msgauth's.
func parseSignature(v string) dkimSig {
	var s dkimSig
	for _, tag := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		val = stripWSP(val)
		switch strings.TrimSpace(k) {
		case "d":
			s.Domain = strings.ToLower(val)
		case "s":
			s.Selector = val
		case "a":
			s.Algorithm = val
		case "b":
			s.b = val
		}
	}
	return s
}

func stripWSP(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// uniqueB sets each B to the shortest prefix of b=, at least 8 characters,
// that tells the message's signatures apart (RFC 6008 §4).
func uniqueB(sigs []dkimSig) {
	for i := range sigs {
		n := min(8, len(sigs[i].b))
		for ; n < len(sigs[i].b); n++ {
			if !sharesPrefix(sigs, i, sigs[i].b[:n]) {
				break
			}
		}
		sigs[i].B = sigs[i].b[:n]
	}
}

func sharesPrefix(sigs []dkimSig, i int, p string) bool {
	for j := range sigs {
		if j != i && sigs[j].b != sigs[i].b && strings.HasPrefix(sigs[j].b, p) {
			return true
		}
	}
	return false
}
