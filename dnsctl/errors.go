package dnsctl

import (
	"fmt"
	"strings"
)

// RefusedError is a refusal for safety: doing what was asked could lose
// mail or act on state nobody agreed on. Nothing was changed.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// ConflictError says an UPDATE's prerequisite failed (NXRRSET, RFC 2136
// §2.4.2): the MX RRset on the primary is no longer the one dnsctl read, so
// someone else changed it in between. Nothing was changed by this update.
type ConflictError struct {
	Server   string
	Expected RRset // what the prerequisite demanded
	// What names the RRset instead when the UPDATE guarded another one
	// than the MX RRset (a TLSA RRset).
	What string
}

func (e *ConflictError) Error() string {
	what := "the MX RRset is no longer " + e.Expected.String()
	if e.What != "" {
		what = e.What
	}
	return fmt.Sprintf("update on %s: prerequisite failed (NXRRSET): %s; "+
		"another writer changed it since it was read, so nothing was changed; check with 'dnsctl status' and run again",
		e.Server, what)
}

// KeyError says the server did not accept the TSIG key: it does not know
// the key, the secret or algorithm differ, the clocks differ, or the key is
// not allowed to update the zone's MX records.
type KeyError struct {
	Key    *Key
	Server string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("update on %s rejected for %s: %s", e.Server, e.Key, e.Reason)
}

// UntrustedError says a reply to a signed request was not signed, or its
// signature did not verify. Its contents, success included, mean nothing.
type UntrustedError struct {
	Server string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("untrusted reply from %s: %s; not treating it as success", e.Server, e.Reason)
}

// LagError says that, when the time ran out, some authoritative servers did
// not yet show the expected RRset with a serial at least the primary's.
type LagError struct {
	Want    RRset
	Serial  uint32 // the primary's serial with Want; 0 if the primary never showed it
	Lagging []View
	What    string // what was waited for, when not the MX RRset Want
}

func (e *LagError) Error() string {
	var who []string
	for _, v := range e.Lagging {
		who = append(who, v.Server+" ("+v.Summary()+")")
	}
	what := e.Want.String()
	if e.What != "" {
		what = e.What
	}
	return fmt.Sprintf("propagation timed out: want %s at serial >= %d; lagging: %s",
		what, e.Serial, strings.Join(who, "; "))
}

// TimeoutError says a wait ran out of time; What says for what.
type TimeoutError struct {
	What string
}

func (e *TimeoutError) Error() string { return "timed out " + e.What }
