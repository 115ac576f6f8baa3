package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// maxLine is the longest body line the generator writes, without its CRLF.
// RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters.
const maxLine = 78

// dateLayout is the RFC 5322 §3.3 date-time with a two-digit day, so that
// every Date header has the same length.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// A generator produces test messages of an exact size. The body is built
// once; each message differs only in its headers (Message-ID, Subject, Date),
// which have a fixed length, so that every message is exactly size bytes and
// producing one costs a copy, not a fresh body: the load tool shares the
// machine with the server it measures.
type generator struct {
	from  string
	rcpts []string
	size  int
	token string // random, per run: Message-IDs are unique across runs too

	body     []byte // dot-stuffed body, CRLF line endings, without the terminator
	headerSz int    // length of every message's header section, blank line included
}

// newGenerator returns a generator of messages of exactly size bytes
// (headers and body, CRLF line endings, before dot-stuffing).
func newGenerator(from string, rcpts []string, size int) (*generator, error) {
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("no recipients")
	}
	var tok [6]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("message-id token: %w", err)
	}
	g := &generator{from: from, rcpts: rcpts, size: size, token: hex.EncodeToString(tok[:])}
	g.headerSz = len(g.header(nil, 0, time.Unix(0, 0).UTC()))
	// The smallest body is one short line.
	if size < g.headerSz+3 {
		return nil, fmt.Errorf("size %d is too small: the headers alone take %d bytes", size, g.headerSz)
	}
	g.body = stuff(bodyText(size-g.headerSz, 1))
	return g, nil
}

// header appends the header section of message seq, blank line included.
// Its length does not depend on seq or date.
func (g *generator) header(dst []byte, seq uint64, date time.Time) []byte {
	dst = append(dst, "Received: from smtpload.invalid (localhost [127.0.0.1])\r\n\tby smtpload.invalid with ESMTP id "...)
	dst = fmt.Appendf(dst, "%016x;\r\n\t%s\r\n", seq, date.Format(dateLayout))
	dst = append(dst, "From: smtpload <"...)
	dst = append(dst, g.from...)
	dst = append(dst, ">\r\nTo: "...)
	// RFC 5322 §2.2.3: fold long headers; one address per line.
	for i, r := range g.rcpts {
		if i > 0 {
			dst = append(dst, ",\r\n\t"...)
		}
		dst = append(dst, '<')
		dst = append(dst, r...)
		dst = append(dst, '>')
	}
	dst = fmt.Appendf(dst, "\r\nSubject: smtpload test message %016x\r\n", seq)
	dst = fmt.Appendf(dst, "Date: %s\r\n", date.Format(dateLayout))
	dst = fmt.Appendf(dst, "Message-ID: <%016x.%s@smtpload.invalid>\r\n", seq, g.token)
	dst = append(dst, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"...)
	return dst
}

// terminator ends the data (RFC 5321 §4.1.1.4).
var terminator = []byte(".\r\n")

// wire returns message seq as sent after DATA's 354: dot-stuffed, CRLF line
// endings, followed by the terminating ".\r\n", in parts. The header is
// appended to hdr; the body is shared by every message and must not be
// written to, so that C sessions of big messages hold one body, not C.
func (g *generator) wire(hdr []byte, seq uint64, date time.Time) [][]byte {
	return [][]byte{g.header(hdr, seq, date), g.body, terminator}
}

// words is the vocabulary of the body text.
var words = strings.Fields(`the list archive message thread reply patch
review subscriber moderator digest owner bounce queue relay domain header
body commit release build test server client session mailbox address
sender recipient delivery retry spool kernel driver network protocol
a an of to in on for with from by and or not is are was be this that`)

// bodyText returns n bytes of plain text in CRLF lines of at most maxLine
// characters. Every 16th line starts with a dot, so that dot-stuffing is
// exercised on every message. It is deterministic for a given seed.
func bodyText(n int, seed uint64) []byte {
	rng := seed | 1
	next := func(m int) int {
		// xorshift64: deterministic and cheap; quality does not matter here.
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		hi, _ := bits.Mul64(rng, uint64(m))
		return int(hi)
	}
	out := make([]byte, 0, n)
	for line := 0; n-len(out) > 0; line++ {
		rest := n - len(out)
		if rest <= maxLine+2 {
			out = appendLine(out, rest-2, line, next)
			break
		}
		l := 40 + next(maxLine-40+1)
		// Never leave a remainder that cannot hold a line and its CRLF.
		if r := rest - (l + 2); r < 2 {
			l -= 3
		}
		out = appendLine(out, l, line, next)
	}
	return out
}

// appendLine appends a line of exactly l characters plus CRLF.
func appendLine(out []byte, l, line int, next func(int) int) []byte {
	start := len(out)
	if line%16 == 15 && l > 0 {
		out = append(out, '.')
	}
	for len(out)-start < l {
		w := words[next(len(words))]
		room := l - (len(out) - start)
		if len(out) > start && out[len(out)-1] != '.' {
			if room < 2 {
				out = append(out, '.')
				continue
			}
			out = append(out, ' ')
			room--
		}
		if len(w) > room {
			w = w[:room]
		}
		out = append(out, w...)
	}
	return append(out, '\r', '\n')
}

// stuff doubles a leading dot on every line (RFC 5321 §4.5.2).
func stuff(text []byte) []byte {
	out := make([]byte, 0, len(text)+len(text)/64)
	bol := true
	for _, c := range text {
		if bol && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		bol = c == '\n'
	}
	return out
}
