// Package msgauth authenticates a message at the MX and writes the verdicts
// into one Authentication-Results header field (RFC 8601) that the list
// software can trust.
//
// Check runs, for one message:
//
//   - iprev (RFC 8601 §3): the PTR names of the client's address, each
//     confirmed by an A or AAAA lookup; at most 10 names are tried.
//   - SPF (RFC 7208) for the MAIL FROM identity, or for the HELO identity
//     when the reverse-path is null (§2.4), with blitiri.com.ar/go/spf; the
//     limits of §4.6.4 hold: 10 terms that cause lookups, 2 void lookups.
//   - DKIM (RFC 6376, RFC 8301, RFC 8463 for Ed25519) with go-msgauth, at
//     most Config.MaxDKIMSignatures signatures per message; keys are looked
//     up through the Checker's Resolver. go-msgauth's work grows with h=
//     entries × header fields, so a signature whose h= lists more than 256
//     fields is permerror without being verified, and so is every
//     signature of a message whose header has more than 1000 lines.
//   - DMARC (RFC 7489): the Author Domain from the single From field
//     (§6.6.1), the policy at _dmarc.<domain> or else at the organizational
//     domain (§6.6.3, the Public Suffix List, sp= for subdomains) with
//     go-msgauth; identifier alignment, strict or relaxed per aspf= and
//     adkim= (§3.1), is evaluated here.
//
// Guarantees:
//
//   - Check never fails and never blocks longer than Config.Timeout (or
//     its context), DKIM's hashing included: a verification still running
//     then is temperror, and it reads no more of the message once Check
//     has returned. What it cannot decide is a result keyword, temperror
//     for DNS trouble (SERVFAIL, REFUSED, timeouts) and permerror for
//     broken records. NXDOMAIN and empty answers are never temporary.
//     Result.TempError says a temperror occurred; whether to tempfail the
//     message is the caller's decision.
//   - The header's authserv-id is Config.AuthservID. Property values taken
//     from the client (HELO, MAIL FROM) are stripped of characters that
//     could break the field. Reasons from the verifiers are in Result for
//     logs and never in the header.
//   - StripForged removes every incoming Authentication-Results field that
//     claims our authserv-id (RFC 8601 §5) and changes no other byte.
//   - All lookups go through a Resolver: one configured server or the
//     system's, never anything else. The package has no global state.
//
// It does not apply policy: it neither rejects nor quarantines, it does not
// send DMARC reports, and it does not evaluate ARC (RFC 8617).
package msgauth
