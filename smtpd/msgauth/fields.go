package msgauth

import (
	"bytes"
	"strings"
	"unicode"
)

// field is one header field of a message: its name and the bytes of the
// whole field, continuation lines and line endings included.
type field struct {
	name       string // before the colon, trailing WSP removed (RFC 5322 §4.5.3 obs-fields)
	start, end int    // msg[start:end] is the field
}

// value returns the field's unfolded value: after the colon, CR and LF
// removed (RFC 5322 §2.2.3), leading and trailing WSP trimmed.
func (f field) value(msg []byte) string {
	raw := msg[f.start:f.end]
	i := bytes.IndexByte(raw, ':')
	if i < 0 {
		return ""
	}
	// Unfold: drop the line breaks, keep the whitespace after them.
	v := make([]byte, 0, len(raw)-i-1)
	for _, ch := range raw[i+1:] {
		if ch != '\r' && ch != '\n' {
			v = append(v, ch)
		}
	}
	return strings.Trim(string(v), " \t")
}

// headerFields splits the header section of msg into fields, the way
// go-msgauth's DKIM verifier does (so that the n-th DKIM-Signature field
// here is its n-th signature): a line starting with SP or HT continues the
// previous field; the first empty line ends the header. A line may end in
// CRLF or a bare LF. body is the offset of the body, or len(msg) when the
// header has no end (sep reports whether the empty line was there).
func headerFields(msg []byte) (fields []field, body int, sep bool) {
	pos := 0
	for pos < len(msg) {
		end := len(msg)
		if nl := bytes.IndexByte(msg[pos:], '\n'); nl >= 0 {
			end = pos + nl + 1
		}
		line := msg[pos:end]
		if isEmptyLine(line) {
			return fields, end, true
		}
		if len(fields) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1].end = end
		} else {
			name, _, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				name = nil // not a field; kept so that the count matches
			}
			fields = append(fields, field{
				name:  strings.TrimRight(string(name), " \t"),
				start: pos, end: end,
			})
		}
		pos = end
	}
	return fields, len(msg), false
}

func isEmptyLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// StripForged returns msg without the Authentication-Results header fields
// that claim authservID (RFC 8601 §5: a receiver must remove them on
// incoming mail, or a sender could forge our verdicts), however they are
// folded and in any case. A field claims it when its authserv-id is
// authservID by the grammar of RFC 8601 §2.2, or when any word before its
// first ';' is, comments and quotes aside: consumers with naive parsers
// (go-msgauth's takes the first word) must not find one of ours left
// either. Every other byte of msg, the fields of other authserv-ids
// included, is unchanged; when nothing is removed, msg itself is returned.
func StripForged(msg []byte, authservID string) []byte {
	fields, _, _ := headerFields(msg)
	var drop []field
	for _, f := range fields {
		if forged(msg, f, authservID) {
			drop = append(drop, f)
		}
	}
	if len(drop) == 0 {
		return msg
	}
	return cut(msg, drop)
}

// cut returns a copy of msg without the fields in drop, which are in
// header order.
func cut(msg []byte, drop []field) []byte {
	out := make([]byte, 0, len(msg))
	pos := 0
	for _, f := range drop {
		out = append(out, msg[pos:f.start]...)
		pos = f.end
	}
	return append(out, msg[pos:]...)
}

// forged reports whether f is an Authentication-Results field that claims
// id. The name is compared without surrounding whitespace of any kind, as
// parsers that trim it see it.
func forged(msg []byte, f field, id string) bool {
	return strings.EqualFold(strings.TrimFunc(f.name, unicode.IsSpace), "Authentication-Results") &&
		claims(f.value(msg), id)
}

// claims reports whether an Authentication-Results value claims id: by the
// grammar, or as a word of the part before the first ';'. Words are split
// at every character that cannot be part of a token (RFC 2045 §5.1, the
// form of every id New accepts): the whitespace go-msgauth cuts and trims
// at (unicode.IsSpace: also \v, \f, U+0085, U+00A0, U+2003 …), control
// and format characters, and any byte outside ASCII, so that a parser that
// reads the field as Latin-1 (where byte 0xA0 is a no-break space) finds
// no id of ours either.
func claims(v, id string) bool {
	if strings.EqualFold(authservIDOf(v), id) {
		return true
	}
	head, _, _ := strings.Cut(v, ";")
	for w := range strings.FieldsFuncSeq(head, func(r rune) bool { return !tokenChar(r) }) {
		if strings.EqualFold(w, id) {
			return true
		}
	}
	return false
}

// tokenChar reports whether r may be part of an RFC 2045 token: printable
// ASCII other than SP and tspecials. Invalid UTF-8 reaches here as
// utf8.RuneError, which is not.
func tokenChar(r rune) bool {
	return r > ' ' && r < 0x7f && !strings.ContainsRune(tspecials, r)
}

// tspecials are the characters RFC 2045 §5.1 excludes from a token.
const tspecials = `()<>@,;:\"/[]?=`

// authservIDOf returns the authserv-id at the start of an
// Authentication-Results value (RFC 8601 §2.2: [CFWS] authserv-id, where
// authserv-id is a token or a quoted-string), or "" when there is none.
func authservIDOf(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(v[i])
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(v, " \t;()\"")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// skipCFWS removes leading whitespace and (nested) comments.
func skipCFWS(v string) string {
	for {
		v = strings.TrimLeft(v, " \t")
		if !strings.HasPrefix(v, "(") {
			return v
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(v) {
			return "" // unterminated comment: no id
		}
		v = v[i+1:]
	}
}
