// Package dnsctl takes one MX host out of a zone's MX RRset and puts the
// exact records back, and proves each change reached every authoritative
// server. It is the library behind the dnsctl command.
//
// # DNS
//
// Changes are RFC 2136 UPDATEs sent over TCP to the primary and signed with
// a TSIG key (RFC 8945) read from a file written by tsig-keygen
// (hmac-sha256, hmac-sha512 or hmac-sha1). Every UPDATE carries the exact
// current RRset as its prerequisite (RFC 2136 §2.4.2), so a change made by
// someone else between our read and our write fails with NXRRSET
// (*ConflictError) instead of being overwritten; only when the primary then
// shows exactly the RRset that UPDATE was to produce (an UPDATE of a killed
// run, applied late) does dnsctl go on. A restore deletes the RRset and
// inserts the original records in the same UPDATE, so preferences and TTLs
// come back byte for byte.
//
// An UPDATE counts as applied only when the reply is NOERROR and carries a
// TSIG that verifies with our key: miekg/dns's Exchange alone accepts an
// unsigned reply to a signed request, and dnsctl never does
// (*UntrustedError). A reply that rejects the key (NOTAUTH, BADKEY,
// BADSIG, BADTIME, REFUSED) is a *KeyError naming the key and its file.
//
// Reads ask each authoritative address with RD=0 and accept only
// authoritative (AA) NOERROR answers; UDP first, TCP when truncated. The
// serial is read before and after the MX RRset so the pair belongs
// together. WaitFor polls every address until each shows the expected RRset
// with a serial at least the primary's (RFC 1982 arithmetic), or returns a
// *LagError naming who lags.
//
// # Never
//
// dnsctl never removes a record when fewer than the minimum (at least one)
// would remain (*RefusedError): BIND 9.18 and Knot 3.2 both delete the last
// MX without complaint. It never changes anything but the MX RRset at the
// zone's apex.
package dnsctl
