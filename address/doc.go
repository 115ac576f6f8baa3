// Package address holds the rules by which mxq reads and compares mail
// addresses, one set for every program: mxd checking a RCPT (smtpd), the
// recipient registry and the dedup key (queue), listd's routes (lists),
// the entries `mxq lists add` and listd.toml accept (cmd). Each of them
// imports this package; it imports nothing of mxq, so no big package
// owns the rules and none can drift from another.
//
// # Guarantees
//
// Addresses compare in one form, Fold's: ASCII letters lowered, every
// other byte as it is. SameAddress and Match compare in that form, and
// NormalizePattern returns it. Unicode case folding is not used on
// purpose: strings.ToLower folds U+212A KELVIN SIGN into "k" and U+0130
// into "i", so a look-alike address would reach a list; lists.sr.ht,
// mlmmj and Mailman all compare ASCII case-insensitively and the rest
// byte for byte.
//
// NormalizePattern accepts an address or pattern only when every part is
// there, the local part is a dot-string (RFC 5321 §4.1.2), and it has no
// white space, control or other invisible character (Invisible, for the
// UTF-8 addresses of RFC 6531). Match's cost is at most
// len(pattern)·len(addr): a pattern from a file cannot make it
// exponential.
//
// # Never
//
// It never folds Unicode case, never maps or checks a domain with IDNA
// or a local part with PRECIS (non-ASCII compares byte for byte), never
// looks anything up and keeps no state.
package address
