package dnsctl

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// Key is a TSIG key (RFC 8945) as tsig-keygen writes it.
type Key struct {
	Name      string // canonical: lower case, fully qualified
	Algorithm string // a miekg/dns algorithm name, e.g. dns.HmacSHA256
	Secret    string // base64
	File      string // where it was read from, for messages
}

// algorithms maps the names a key file may use to miekg/dns's names.
// hmac-md5 is deliberately missing: RFC 8945 §6 deprecates it.
var algorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha512": dns.HmacSHA512,
	"hmac-sha1":   dns.HmacSHA1,
}

// String names the key as messages show it: its name and file.
func (k *Key) String() string {
	if k.File == "" {
		return fmt.Sprintf("key %q", k.Name)
	}
	return fmt.Sprintf("key %q (%s)", k.Name, k.File)
}

// LoadKey reads a key file written by tsig-keygen.
func LoadKey(file string) (*Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return ParseKey(file, string(b))
}

// ParseKey parses the text of a key file: one
//
//	key "NAME" { algorithm ALG; secret "BASE64"; };
//
// statement, with named.conf comments. The algorithm defaults to hmac-sha256
// as in tsig-keygen. Errors name the file and line.
func ParseKey(file, text string) (*Key, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", file, err)
	}
	p := &keyParser{file: file, toks: toks}
	k, err := p.key()
	if err != nil {
		return nil, err
	}
	if !p.done() {
		return nil, p.errorf("a key file must hold one key; found %q after it", p.peek().text)
	}
	return k, nil
}

type keyParser struct {
	file string
	toks []token
	i    int
	last int // line of the last token read
}

func (p *keyParser) done() bool { return p.i >= len(p.toks) }

func (p *keyParser) peek() token {
	if p.done() {
		return token{line: p.last}
	}
	return p.toks[p.i]
}

func (p *keyParser) next() token {
	t := p.peek()
	if !p.done() {
		p.i++
		p.last = t.line
	}
	return t
}

func (p *keyParser) errorf(format string, a ...any) error {
	line := p.peek().line
	if line == 0 {
		line = p.last
	}
	if line == 0 {
		return fmt.Errorf("%s: %s", p.file, fmt.Sprintf(format, a...))
	}
	return fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, a...))
}

// expect reads a token with exactly text want.
func (p *keyParser) expect(want string) error {
	if t := p.peek(); t.text != want || t.quoted {
		if p.done() {
			return p.errorf("file ends where %q was expected", want)
		}
		return p.errorf("%q expected, found %q", want, t.text)
	}
	p.next()
	return nil
}

func (p *keyParser) key() (*Key, error) {
	if p.done() {
		return nil, p.errorf("no key statement in file")
	}
	if err := p.expect("key"); err != nil {
		return nil, err
	}
	name := p.next()
	if name.text == "" || name.text == "{" {
		return nil, p.errorf("key name expected")
	}
	if _, ok := dns.IsDomainName(name.text); !ok {
		return nil, p.errorf("key name %q is not a domain name", name.text)
	}
	k := &Key{Name: dns.CanonicalName(name.text), Algorithm: dns.HmacSHA256, File: p.file}
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	for p.peek().text != "}" || p.peek().quoted {
		if err := p.clause(k); err != nil {
			return nil, err
		}
	}
	p.next()
	if err := p.expect(";"); err != nil {
		return nil, err
	}
	if k.Secret == "" {
		return nil, p.errorf("key %q has no secret", name.text)
	}
	return k, nil
}

// clause reads "algorithm ALG;" or "secret "BASE64";".
func (p *keyParser) clause(k *Key) error {
	if p.done() {
		return p.errorf("file ends inside key %q", k.Name)
	}
	kw := p.next()
	val := p.peek()
	if p.done() || val.text == ";" {
		return p.errorf("%q needs a value", kw.text)
	}
	switch kw.text {
	case "algorithm":
		alg, ok := algorithms[strings.ToLower(strings.TrimSuffix(val.text, "."))]
		if !ok {
			return p.errorf("algorithm %q not supported (use hmac-sha256, hmac-sha512 or hmac-sha1)", val.text)
		}
		k.Algorithm = alg
	case "secret":
		b, err := base64.StdEncoding.DecodeString(val.text)
		if err != nil || len(b) == 0 {
			return p.errorf("secret is not base64")
		}
		k.Secret = val.text
	default:
		p.i--
		return p.errorf("unknown clause %q in key (want algorithm or secret)", kw.text)
	}
	p.next()
	return p.expect(";")
}

type token struct {
	text   string
	line   int
	quoted bool
}

// tokenize splits named.conf text into words, quoted strings and the
// punctuation { } ;, dropping # and // line comments and /* */ comments.
func tokenize(s string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%d: comment not closed", line)
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += end + 4
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"':
			end := strings.IndexAny(s[i+1:], "\"\n")
			if end < 0 || s[i+1+end] != '"' {
				return nil, fmt.Errorf("%d: string not closed", line)
			}
			toks = append(toks, token{text: s[i+1 : i+1+end], line: line, quoted: true})
			i += end + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n{};\"#", rune(s[j])) && !strings.HasPrefix(s[j:], "//") {
				j++
			}
			toks = append(toks, token{text: s[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}
