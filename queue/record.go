package queue

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// FormatVersion is the newest record format this code reads and writes,
// OldestFormat the oldest. Which one a producer writes is chosen by the
// consumers it sees (see FormatChooser and the "Format versions and
// upgrades" section of docs/redis.md).
const (
	FormatVersion = 2
	OldestFormat  = 1
)

// Record is everything known about a queued message except its body. The
// queue owns this format because producers and consumers share it.
type Record struct {
	// ID is the queue id, one per SMTP transaction.
	ID string `json:"id"`
	// Host is the MX host that accepted the message.
	Host string `json:"host"`
	// From is the envelope sender (MAIL FROM), "" for the null sender.
	From string `json:"from"`
	// FromParams are the MAIL FROM parameters the client sent (SIZE,
	// BODY, SMTPUTF8, RET, ENVID, …), keyword upper-cased; ENVID decoded
	// from xtext (RFC 3461 §4), printable ASCII. A consumer that passes
	// it on encodes it again; it never decodes it a second time.
	FromParams map[string]string `json:"from_params,omitempty"`
	// Rcpts are the envelope recipients in the order given.
	Rcpts []Recipient `json:"rcpts"`
	// ClientIP is the address of the SMTP client.
	ClientIP string `json:"client_ip"`
	// HELO is the name the client gave in HELO or EHLO.
	HELO string `json:"helo"`
	// TLSVersion and TLSCipher describe the session's TLS; empty without.
	TLSVersion string `json:"tls_version,omitempty"`
	TLSCipher  string `json:"tls_cipher,omitempty"`
	// Arrived is when the end of data was received.
	Arrived time.Time `json:"arrived"`
	// Size is the length of the body in bytes, as stored.
	Size int64 `json:"size"`
	// Auth holds the authentication results, when the producer computed
	// them. Optional for readers.
	Auth *AuthResults `json:"auth,omitempty"`
}

// Recipient is one RCPT TO.
type Recipient struct {
	Addr string `json:"addr"`
	// Params are the RCPT TO parameters (NOTIFY, ORCPT, …). ORCPT is
	// "TYPE;address", the type upper-cased ("RFC822", "UTF-8") and the
	// address decoded from xtext or utf-8-addr-xtext (RFC 3461 §4,
	// RFC 6533 §3) once: "rfc822;a+2Bb@x" is stored "RFC822;a+b@x".
	// mxd refuses an address with a control character. As for ENVID, a
	// consumer never decodes it again.
	Params map[string]string `json:"params,omitempty"`
}

// PrintableParam reports whether s may be stored as a decoded parameter
// value (ENVID, the address of ORCPT): UTF-8 without control characters
// (C0, DEL, C1) or line separators (U+2028, U+2029), any of which would
// break a header field or a program's environment downstream.
func PrintableParam(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

// AuthResults are the results that went into the Authentication-Results
// header, so consumers need not parse it.
type AuthResults struct {
	// The result keywords of RFC 8601: pass, fail, softfail, neutral,
	// none, temperror, permerror.
	SPF   string `json:"spf,omitempty"`
	DKIM  string `json:"dkim,omitempty"`
	DMARC string `json:"dmarc,omitempty"`
	IPRev string `json:"iprev,omitempty"`
	// FromDomain is the domain of the From field; DMARCPolicy its p= (or
	// sp=) as published.
	FromDomain  string `json:"from_domain,omitempty"`
	DMARCPolicy string `json:"dmarc_policy,omitempty"`
}

// Recipients returns the addresses of r.Rcpts.
func (r *Record) Recipients() []string {
	out := make([]string, len(r.Rcpts))
	for i, rc := range r.Rcpts {
		out[i] = rc.Addr
	}
	return out
}

// encodeRecord returns the stream fields of r.
func encodeRecord(r *Record) ([]byte, error) {
	return json.Marshal(r)
}

// entryVersion is the format version of a stream entry, 0 when it has
// none.
func entryVersion(values map[string]any) int {
	v, _ := values["v"].(string)
	ver, _ := strconv.Atoi(v)
	return ver
}

// decodeRecord parses the stream fields of one entry.
func decodeRecord(values map[string]any) (*Record, error) {
	v, _ := values["v"].(string)
	ver, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("record without format version (v=%q)", v)
	}
	if ver > FormatVersion {
		return nil, fmt.Errorf("record format version %d is newer than this reader's (%s): left for a consumer that reads it", ver, FormatList(Formats()))
	}
	if ver < OldestFormat {
		return nil, fmt.Errorf("record format version %d not understood (this reader knows %s)", ver, FormatList(Formats()))
	}
	raw, _ := values["rec"].(string)
	var r Record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, fmt.Errorf("record format version %d: %w", ver, err)
	}
	if r.ID == "" {
		r.ID, _ = values["id"].(string)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("record without queue id")
	}
	return &r, nil
}
