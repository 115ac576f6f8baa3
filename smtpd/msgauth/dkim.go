package msgauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/emersion/go-msgauth/dkim"
)

// The bounds of the work one message can cause. go-msgauth looks up each
// h= entry by scanning every header field from the bottom, and joins a
// field's continuation lines one string concatenation at a time, so its
// time grows with h= entries × fields and with the square of a field's
// lines: one signature listing a name 40,000 times over 40,000 fields
// took most of a minute of CPU. Over these caps it is not run.
const (
	// maxSignedFields caps the h= entries of a signature (RFC 6376
	// §3.5); a signature with more is permerror. Real signers list 5 to
	// 60 (rspamd's default list, over-signed, stays under 60).
	maxSignedFields = 256
	// maxHeaderLines caps the lines of the header section, continuation
	// lines included; over it, no signature is verified and each is
	// permerror. Real messages have tens to a few hundred.
	maxHeaderLines = 1000
)

// dkimSig is a signature's verdict while Check assembles the Result.
type dkimSig struct {
	DKIMSignature
	b      string // the whole b= value, to choose a unique header.b prefix
	signed int    // h= entries, the most over repeated h= tags
	field  int    // index of the DKIM-Signature field in the header
	// signedSigs is how many times h= names DKIM-Signature: the fields
	// go-msgauth then hashes are the bottom-most ones (RFC 6376 §5.4.2).
	signedSigs int
}

// verifyFunc is go-msgauth's dkim.VerifyWithOptions; tests replace it to
// hold a verification up.
type verifyFunc func(io.Reader, *dkim.VerifyOptions) ([]*dkim.Verification, error)

// checkDKIM verifies the first maxSigs DKIM-Signature fields of msg (RFC
// 6376 §6) with go-msgauth, its key lookups through our resolver, and
// returns a verdict per verified signature and the number not verified.
// msg is the header section, with the empty line that ends it; the body
// is read from body as it arrives. The verification ends with ctx: what
// has not finished by then is temperror, and what go-msgauth still does in
// the background is bounded by maxSignedFields and maxHeaderLines and no
// longer reads msg (body must end with ctx too).
func (c *Checker) checkDKIM(ctx context.Context, msg []byte, fields []field, body io.Reader) ([]dkimSig, int) {
	var sigs []dkimSig
	total := 0
	for i, f := range fields {
		if !isSignature(msg, f) {
			continue
		}
		total++
		if len(sigs) < c.maxSigs {
			s := parseSignature(f.value(msg))
			s.field = i
			sigs = append(sigs, s)
		}
	}
	if total == 0 {
		return nil, 0
	}
	skipped := total - len(sigs)
	defer uniqueB(sigs)
	if n := bytes.Count(msg, []byte("\n")); n > maxHeaderLines {
		for i := range sigs {
			sigs[i].Result = PermError
			sigs[i].Reason = fmt.Sprintf("header has %d lines, more than %d", n, maxHeaderLines)
		}
		return sigs, skipped
	}
	kept, drop := limitSignatures(msg, fields, sigs)
	undecided := func(i int) bool { return sigs[i].Result == "" }
	if !slices.ContainsFunc(kept, undecided) {
		return sigs, skipped
	}
	verifs, err := c.verifyWithin(ctx, msg, body, drop, len(kept))
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// Not a verdict on a signature but a failure to run (or the
		// deadline): go-msgauth then clears one verification's error,
		// so trust none of them.
		for _, i := range kept {
			if undecided(i) {
				sigs[i].Result, sigs[i].Reason = TempError, "verifier: "+err.Error()
			}
		}
		return sigs, skipped
	}
	for k, i := range kept {
		switch {
		case !undecided(i):
			continue // decided by the limits; verified only to keep the order
		case k >= len(verifs):
			sigs[i].Result, sigs[i].Reason = PermError, "not verified"
			continue
		}
		v := verifs[k]
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
	return sigs, skipped
}

// limitSignatures makes the signatures over maxSignedFields permerror and
// returns the fields of those, which go-msgauth must not see, and the
// indices of the others, which it verifies in that order. A signature that
// hashes one of the hidden fields (its h= names DKIM-Signature) cannot be
// verified without it: it is permerror too, though still kept, so that
// go-msgauth's n-th signature remains our n-th kept one.
func limitSignatures(msg []byte, fields []field, sigs []dkimSig) (kept []int, drop []field) {
	dropped := map[int]bool{}
	for i := range sigs {
		if sigs[i].signed > maxSignedFields {
			sigs[i].Result = PermError
			sigs[i].Reason = fmt.Sprintf("h= lists %d header fields, more than %d", sigs[i].signed, maxSignedFields)
			drop = append(drop, fields[sigs[i].field])
			dropped[sigs[i].field] = true
		}
	}
	var all []int // every DKIM-Signature field, bottom-most first
	for i := len(fields) - 1; i >= 0 && len(drop) > 0; i-- {
		if isSignature(msg, fields[i]) {
			all = append(all, i)
		}
	}
	for i := range sigs {
		if dropped[sigs[i].field] {
			continue
		}
		kept = append(kept, i)
		covered := all[:min(sigs[i].signedSigs, len(all))]
		if slices.ContainsFunc(covered, func(f int) bool { return dropped[f] }) {
			sigs[i].Result, sigs[i].Reason = PermError, "h= covers a signature over the h= cap"
		}
	}
	return kept, drop
}

// verifyWithin runs go-msgauth on the header section msg, without the
// fields in drop, and the body, expecting n signatures, and returns when
// it has finished or ctx has ended.
func (c *Checker) verifyWithin(ctx context.Context, msg []byte, body io.Reader, drop []field, n int) ([]*dkim.Verification, error) {
	opts := &dkim.VerifyOptions{
		// ctx has no deadline while the body arrives; a key lookup
		// gets the check's timeout of its own.
		LookupTXT: func(name string) ([]string, error) {
			lctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			return c.resolver.LookupTXT(lctx, name)
		},
		MaxVerifications: n,
	}
	rest := &cutoffReader{src: msg}
	if len(drop) > 0 {
		rest.src = cut(msg, drop) // a copy
	}
	r := io.MultiReader(rest, body)
	type outcome struct {
		verifs []*dkim.Verification
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := c.verify(r, opts)
		done <- outcome{v, err}
	}()
	select {
	case o := <-done:
		return o.verifs, o.err
	case <-ctx.Done():
		rest.cut()
		return nil, fmt.Errorf("not finished in time: %w", ctx.Err())
	}
}

// cutoffReader reads src until cut is called, and from then on reads
// nothing more: a verification left running after Check returned must not
// read the caller's message, whose buffer may be in use again. It then
// reports io.EOF, not an error: go-msgauth leaves the goroutines of its
// parallel verification blocked forever when its input fails.
type cutoffReader struct {
	mu  sync.Mutex
	src []byte
}

func (r *cutoffReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.src) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.src)
	r.src = r.src[n:]
	return n, nil
}

func (r *cutoffReader) cut() {
	r.mu.Lock()
	r.src = nil
	r.mu.Unlock()
}

// isSignature reports whether go-msgauth takes f for a DKIM-Signature
// field, and an h= entry DKIM-Signature picks it: by its name as
// go-msgauth reads it, what comes before the first colon (or the whole
// field when there is none) without surrounding whitespace.
func isSignature(msg []byte, f field) bool {
	name, _, _ := bytes.Cut(msg[f.start:f.end], []byte(":"))
	return bytes.EqualFold(bytes.TrimSpace(name), []byte("DKIM-Signature"))
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
		case "h":
			// go-msgauth splits at ':' (RFC 6376 §3.5).
			entries := strings.Split(val, ":")
			s.signed = max(s.signed, len(entries))
			s.signedSigs = 0
			for _, e := range entries {
				if strings.EqualFold(e, "DKIM-Signature") {
					s.signedSigs++
				}
			}
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

// stripWSP removes whitespace as go-msgauth does from tag values: any
// unicode.IsSpace, not only the FWS of RFC 6376 §3.2.
func stripWSP(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
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

// hasSignature reports whether go-msgauth would find a DKIM-Signature
// field in the header section msg.
func hasSignature(msg []byte, fields []field) bool {
	for _, f := range fields {
		if isSignature(msg, f) {
			return true
		}
	}
	return false
}
