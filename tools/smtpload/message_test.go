package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// unstuff reverses dot-stuffing and strips the terminator, as a server does.
func unstuff(t *testing.T, wire []byte) []byte {
	t.Helper()
	body, ok := bytes.CutSuffix(wire, []byte("\r\n.\r\n"))
	if !ok {
		t.Fatalf("message does not end in CRLF.CRLF: %q", tail(wire))
	}
	body = append(body, '\r', '\n')
	var out []byte
	for _, line := range bytes.SplitAfter(body, []byte("\r\n")) {
		out = append(out, bytes.TrimPrefix(line, []byte("."))...)
	}
	return out
}

// appendWire appends message seq as the generator sends it, in one piece.
func (g *generator) appendWire(dst []byte, seq uint64, date time.Time) []byte {
	for _, p := range g.wire(nil, seq, date) {
		dst = append(dst, p...)
	}
	return dst
}

func tail(b []byte) []byte { return b[max(0, len(b)-20):] }

func TestGeneratorSize(t *testing.T) {
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, rcpts := range [][]string{{"a@example.org"}, {"a@example.org", "list+owner@lists.example.org", "c@example.org"}} {
		for _, size := range []int{1024, 1025, 1026, 1100, 4096, 10240, 10241, 100_000} {
			t.Run(fmt.Sprintf("%d rcpts, %d bytes", len(rcpts), size), func(t *testing.T) {
				g, err := newGenerator("sender@example.org", rcpts, size)
				if err != nil {
					t.Fatal(err)
				}
				for _, seq := range []uint64{0, 7, 1 << 40} {
					msg := unstuff(t, g.appendWire(nil, seq, date))
					if got := len(msg); got != size {
						t.Errorf("seq %d: size %d, want %d", seq, got, size)
					}
				}
			})
		}
	}
}

func TestGeneratorTooSmall(t *testing.T) {
	if _, err := newGenerator("s@example.org", []string{"r@example.org"}, 100); err == nil {
		t.Error("size 100: no error, want one: the headers alone are larger")
	}
}

func TestGeneratorLines(t *testing.T) {
	g, err := newGenerator("sender@example.org", []string{"r@example.org"}, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	wire := g.appendWire(nil, 1, time.Now())
	if i := bytes.IndexByte(wire, 0); i >= 0 {
		t.Errorf("NUL at %d", i)
	}
	lines := bytes.SplitAfter(wire, []byte("\r\n"))
	if last := lines[len(lines)-1]; len(last) != 0 {
		t.Fatalf("message does not end in CRLF: %q", last)
	}
	lines = lines[:len(lines)-1]
	inBody, stuffed := false, 0
	for i, l := range lines {
		text := l[:len(l)-2]
		if bytes.ContainsAny(text, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i, l)
		}
		if len(text) > maxLine {
			t.Errorf("line %d is %d characters long, want at most %d: %q", i, len(text), maxLine, text)
		}
		for _, c := range text {
			if c < 0x20 && c != '\t' || c > 0x7e {
				t.Errorf("line %d has byte %#x", i, c)
			}
		}
		if len(text) == 0 && !inBody {
			inBody = true
			continue
		}
		if inBody && i < len(lines)-1 && bytes.HasPrefix(text, []byte(".")) {
			if !bytes.HasPrefix(text, []byte("..")) {
				t.Errorf("body line %d starts with a single dot: %q", i, text)
			}
			stuffed++
		}
	}
	if !inBody {
		t.Error("no blank line between header and body")
	}
	if stuffed == 0 {
		t.Error("no dot-stuffed line: stuffing is not exercised")
	}
	if got := string(lines[len(lines)-1]); got != ".\r\n" {
		t.Errorf("last line %q, want the terminator", got)
	}
}

func TestGeneratorHeaders(t *testing.T) {
	g, err := newGenerator("sender@example.org", []string{"a@example.org", "b@example.org"}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	ids := map[string]bool{}
	for seq := range uint64(100) {
		msg := string(unstuff(t, g.appendWire(nil, seq, date)))
		hdr, _, ok := strings.Cut(msg, "\r\n\r\n")
		if !ok {
			t.Fatal("no header/body separator")
		}
		for _, want := range []string{"\r\nFrom: smtpload <sender@example.org>\r\n", "\r\nTo: <a@example.org>,\r\n\t<b@example.org>\r\n",
			"\r\nDate: Wed, 25 Nov 2026 22:00:00 +0000\r\n", "\r\nMIME-Version: 1.0\r\n", "\r\nSubject: "} {
			if !strings.Contains(hdr, want) {
				t.Errorf("seq %d: header lacks %q:\n%s", seq, want, hdr)
			}
		}
		_, rest, _ := strings.Cut(hdr, "\r\nMessage-ID: <")
		id, _, _ := strings.Cut(rest, ">")
		if id == "" || ids[id] {
			t.Errorf("seq %d: Message-ID %q empty or repeated", seq, id)
		}
		ids[id] = true
	}
	// Another generator (another run) never repeats an id.
	g2, err := newGenerator("sender@example.org", []string{"a@example.org"}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if g2.token == g.token {
		t.Errorf("two generators share the Message-ID token %q", g.token)
	}
}

func TestStuff(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\r\n", "a\r\n"},
		{".\r\n", "..\r\n"},
		{"a.\r\n.b\r\n..c\r\n", "a.\r\n..b\r\n...c\r\n"},
	}
	for _, tt := range tests {
		if got := string(stuff([]byte(tt.in))); got != tt.want {
			t.Errorf("stuff(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Sessions of big messages must not each hold a copy of the body.
func TestWireSharesBody(t *testing.T) {
	g, err := newGenerator("sender@example.org", []string{"r@example.org"}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	a := g.wire(nil, 1, time.Now())
	b := g.wire(nil, 2, time.Now())
	if &a[1][0] != &b[1][0] {
		t.Error("two messages have two copies of the body, want one shared")
	}
	if bytes.Equal(a[0], b[0]) {
		t.Error("two messages have the same header")
	}
}
