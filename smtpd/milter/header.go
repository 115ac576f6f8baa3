package milter

import (
	"bytes"
	"strings"
)

// Field is one field of a header section as it arrived: Raw is the whole
// field, name, colon, value and every continuation line, with its CRLF.
type Field struct {
	Name string
	Raw  []byte
}

// value is the field's value as milters expect it (Postfix's form): after
// the colon and the one space that usually follows it, the folding kept,
// without the final CRLF.
func (f Field) value() string {
	v := f.Raw[len(f.Name)+1:]
	if len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	return string(bytes.TrimRight(v, "\r\n"))
}

// Fields splits a header section (without the empty line that ends it)
// into its fields. A line that is neither a field nor a continuation
// joins the field before it, as it would for a reader of the message.
func Fields(h []byte) []Field {
	var out []Field
	for len(h) > 0 {
		n := bytes.IndexByte(h, '\n') + 1
		if n == 0 {
			n = len(h)
		}
		line := h[:n]
		h = h[n:]
		i := bytes.IndexByte(line, ':')
		folded := line[0] == ' ' || line[0] == '\t'
		if len(out) > 0 && (folded || i <= 0 || !validName(line[:i])) {
			last := &out[len(out)-1]
			last.Raw = append(last.Raw, line...)
			continue
		}
		name := ""
		if i > 0 {
			name = string(line[:i])
		}
		out = append(out, Field{Name: name, Raw: bytes.Clone(line)})
	}
	return out
}

// Op is a header change.
type Op int

const (
	// AddHeader appends a field to the header section.
	AddHeader Op = iota
	// InsertHeader puts a field after the Index-th field of the section
	// (0: before the first).
	InsertHeader
	// ChangeHeader replaces the value of the Index-th field called Name
	// (counted from 1, names compared without case); an empty value
	// deletes it. A field that is not there is added, unless the change
	// deletes it.
	ChangeHeader
)

// Change is a header change a milter asked for at the end of data.
type Change struct {
	Op    Op
	Index int
	Name  string
	Value string
}

// Apply applies changes to fields in order and returns the result.
// Indexes count the fields present when the change is applied (a deleted
// field no longer counts), as Postfix counts them. A change with a name
// that is not a field name is dropped and counted in bad.
func Apply(fields []Field, changes []Change) (out []Field, bad int) {
	out = fields
	for _, c := range changes {
		if !validName([]byte(c.Name)) {
			bad++
			continue
		}
		nf := Field{Name: c.Name, Raw: format(c.Name, c.Value)}
		switch c.Op {
		case AddHeader:
			out = append(out, nf)
		case InsertHeader:
			i := min(max(c.Index, 0), len(out))
			out = append(out[:i], append([]Field{nf}, out[i:]...)...)
		case ChangeHeader:
			at, n := -1, 0
			for i, f := range out {
				if strings.EqualFold(f.Name, c.Name) {
					n++
					if n == max(c.Index, 1) {
						at = i
						break
					}
				}
			}
			switch {
			case at < 0 && c.Value != "":
				out = append(out, nf)
			case at < 0:
			case c.Value == "":
				out = append(out[:at], out[at+1:]...)
			default:
				out[at] = nf
			}
		}
	}
	return out, bad
}

// Join writes fields back into a header section.
func Join(fields []Field) []byte {
	n := 0
	for _, f := range fields {
		n += len(f.Raw) + 2
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = append(b, f.Raw...)
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// format makes the field "Name: value" with CRLF line endings: a milter's
// value may fold with LF alone, or carry a line that does not start with
// white space; no bare CR, LF or NUL reaches the stored message.
func format(name, value string) []byte {
	value = strings.ReplaceAll(value, "\x00", "")
	lines := strings.Split(strings.ReplaceAll(value, "\r\n", "\n"), "\n")
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	for i, l := range lines {
		l = strings.ReplaceAll(l, "\r", "")
		if i == 0 {
			if l != "" {
				b.WriteString(" ")
			}
		} else {
			if strings.TrimSpace(l) == "" {
				continue // an empty continuation line would end the header
			}
			b.WriteString("\r\n")
			if l[0] != ' ' && l[0] != '\t' {
				b.WriteString("\t")
			}
		}
		b.WriteString(l)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// validName reports whether n is a field name (RFC 5322 §3.6.8: printable
// ASCII but the colon).
func validName(n []byte) bool {
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}
