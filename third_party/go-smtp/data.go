package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

// ErrBareLineEnding is returned, with Server.StrictLineEndings, by the
// reader passed to Session.Data at the end of a message that holds a bare
// CR, a bare LF or a NUL.
var ErrBareLineEnding = &SMTPError{
	Code:         554,
	EnhancedCode: EnhancedCode{5, 6, 0},
	Message:      "Message contains bare CR or LF or NUL; lines must end with CRLF",
}

// ErrDataLineTooLong is returned by the reader passed to Session.Data at
// the end of a message sent with DATA that holds a line longer than
// Server.MaxLineLength (its CRLF included); with StrictLineEndings, also
// at the end of one sent with BDAT without BODY=BINARYMIME. The message
// is read to its end first, so that the session stays in step.
var ErrDataLineTooLong = &SMTPError{
	Code:         554,
	EnhancedCode: EnhancedCode{5, 6, 0},
	Message:      "Message has a line too long; RFC 5321 section 4.5.3.1.6 allows 1000 octets",
}

// lineLength watches raw message bytes, across reads, for a line longer
// than max bytes, the LF that ends it included. Zero max checks nothing.
type lineLength struct {
	max  int
	cur  int // bytes of the current line so far
	long bool
}

func (l *lineLength) scanByte(c byte) {
	if l.max <= 0 {
		return
	}
	l.cur++
	if l.cur > l.max {
		l.long = true
	}
	if c == '\n' {
		l.cur = 0
	}
}

func (l *lineLength) scan(b []byte) {
	if l.max <= 0 || l.long {
		return
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.cur += len(b)
			break
		}
		if l.cur+i+1 > l.max {
			l.long = true
			return
		}
		l.cur, b = 0, b[i+1:]
	}
	if l.cur > l.max {
		l.long = true
	}
}

// Write scans b, for use with io.TeeReader.
func (l *lineLength) Write(b []byte) (int, error) {
	l.scan(b)
	return len(b), nil
}

// lineEndings watches raw message bytes, across reads, for a bare CR, a
// bare LF or a NUL. Its zero value is at the start of a message.
type lineEndings struct {
	cr   bool // the last byte was CR: the next must be LF
	open bool // the last line has not ended
	bad  bool
}

func (l *lineEndings) scanByte(c byte) {
	if c == 0 || (c == '\n') != l.cr {
		l.bad = true
	}
	l.cr, l.open = c == '\r', c != '\n'
}

// scan judges b at memory speed: clean text has as many CRs and LFs as
// CRLF pairs, counting one that straddles the previous call.
func (l *lineEndings) scan(b []byte) {
	if len(b) == 0 || l.bad {
		return
	}
	crs, lfs := bytes.Count(b, []byte{'\r'}), bytes.Count(b, []byte{'\n'})
	pairs := bytes.Count(b, []byte("\r\n"))
	if l.cr {
		if b[0] != '\n' {
			l.bad = true
		}
		lfs-- // the LF of the CR that ended the previous call
	}
	last := b[len(b)-1]
	if last == '\r' {
		crs-- // judged with the next byte
	}
	if crs != pairs || lfs != pairs || bytes.IndexByte(b, 0) >= 0 {
		l.bad = true
	}
	l.cr, l.open = last == '\r', last != '\n'
}

// scanLines is scan for bytes that plainLines passed: pairs CRLFs, and
// no other CR but perhaps the last byte. Only bare LFs and NULs are left
// to look for, with two passes at memory speed and none per line.
func (l *lineEndings) scanLines(b []byte, pairs int) {
	if len(b) == 0 || l.bad {
		return
	}
	lfs := bytes.Count(b, []byte{'\n'})
	if l.cr {
		if b[0] != '\n' {
			l.bad = true
		}
		lfs-- // the LF of the CR that ended the previous call
	}
	if lfs != pairs || bytes.IndexByte(b, 0) >= 0 {
		l.bad = true
	}
	last := b[len(b)-1]
	l.cr, l.open = last == '\r', last != '\n'
}

// Write scans b, for use with io.TeeReader.
func (l *lineEndings) Write(b []byte) (int, error) {
	l.scan(b)
	return len(b), nil
}

// clean reports, at the end of a message, whether all its lines ended
// with CRLF.
func (l *lineEndings) clean() bool { return !l.bad && !l.open }

type dataReader struct {
	r     *bufio.Reader
	state int

	strict bool // see Server.StrictLineEndings
	raw    lineEndings
	lines  lineLength

	limited bool
	n       int64 // Maximum bytes remaining
}

// The states of dataReader.Read's state machine.
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

// plainLines returns how much of buf, read from stateData, the state
// machine of dataReader.Read passes on as it is, and the state after it:
// the bytes up to the next CR that is not followed by LF (through that
// CR: the state machine decides what follows it, stateCR), or up to a
// CRLF followed by a dot (through the CRLF, stateBeginLine: the dot is
// the state machine's), or to the end of buf. A line that starts with
// CR goes on as any other, since its CR is followed by LF or stops the
// run. In between, every line ends in CRLF and starts with neither a
// dot nor a lone CR, so the state machine would only go from stateData
// to stateCR to stateBeginLine and back to stateData, passing every byte
// on.
//
// pairs is the number of CRLFs in the bytes it passes: every CR among
// them but a last one is followed by LF, which lineEndings.scanLines
// relies on.
func plainLines(buf []byte) (n, state, pairs int) {
	for {
		i := bytes.IndexByte(buf[n:], '\r')
		if i < 0 {
			return len(buf), stateData, pairs
		}
		n += i + 1
		if n == len(buf) || buf[n] != '\n' {
			return n, stateCR, pairs
		}
		n++
		pairs++
		if n == len(buf) || buf[n] == '.' {
			return n, stateBeginLine, pairs
		}
	}
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	dr.strict = c.server.StrictLineEndings
	dr.lines.max = c.server.MaxLineLength
	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	for n < len(b) && r.state != stateEOF {
		// Fast path: in the middle of a line only CR can change the
		// state, and a CRLF followed by anything but a dot only takes
		// it back to the middle of a line: copy
		// every such line buffered at once instead of a byte at a time
		// (see plainLines).
		if r.state == stateData && r.r.Buffered() > 0 {
			buf, _ := r.r.Peek(min(r.r.Buffered(), len(b)-n))
			k, state, pairs := plainLines(buf)
			buf, r.state = buf[:k], state
			if r.strict {
				r.raw.scanLines(buf, pairs)
			}
			r.lines.scan(buf)
			n += copy(b[n:], buf)
			r.r.Discard(len(buf))
			continue
		}
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		if r.strict {
			// Every byte on the wire, a leading dot and the end
			// marker included: a ".\r" at a line start is dropped
			// from the output below but must not hide a bare CR.
			r.raw.scanByte(c)
		}
		r.lines.scanByte(c)
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
		if r.strict && !r.raw.clean() {
			err = ErrBareLineEnding
		} else if r.lines.long {
			err = ErrDataLineTooLong
		}
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}
