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
// # The fleet and the lease
//
// Maintenance reads the MX hosts' heartbeats and accounting and sets
// their drain flags through a Fleet (*queue.Queue), and holds the
// maintenance lease through a LeaseStore (*maintenance.Store), renewed
// every LeaseTTL/3 while it works. A run stops as soon as its lease is
// lost (maintenance.ErrLost); it refuses to start while another run holds
// the lease, or while the stored state names another host.
//
// # Never
//
// dnsctl never removes a record when fewer than the minimum (at least one)
// would remain (*RefusedError): BIND 9.18 and Knot 3.2 both delete the last
// MX without complaint. It never changes anything but the MX RRset at the
// zone's apex and the TLSA RRsets of MX hosts (_25._tcp.HOST).
//
// # DANE
//
// DANE keeps an MX host's TLSA RRset (RFC 6698, RFC 7672) true to the keys
// the host serves, which it learns by STARTTLS handshakes that offer only
// ECDSA, then only RSA cipher suites (TLS 1.2). It publishes only DANE-EE
// SPKI SHA-256 records (3 1 1), with the same guarded UPDATE as the MX
// changes (the prerequisite is the exact TLSA RRset, or its absence), and
// says a host may serve a new key only once every authoritative server has
// its record and the TTL (or, for a host's first records, the zone's
// negative TTL, RFC 2308) has passed. It removes a record only from a
// signed zone, and only when every address of the host answered and every
// key served has a record that stays. Rollover persists its phase in a
// file so that a killed run continues.
package dnsctl
