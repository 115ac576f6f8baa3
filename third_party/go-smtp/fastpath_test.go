package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// byteDataReader is the byte-at-a-time dataReader.Read that the fast path
// replaced: the fast path must produce exactly its output and errors.
// With strict set, it also judges each raw byte, as the reference for
// StrictLineEndings.
type byteDataReader struct {
	r      *bufio.Reader
	state  int
	strict *refLineEndings
	lines  refLineLength
}

// refLineLength is the plain definition that lineLength must match: a
// line is the bytes up to and including a LF, or up to the end, and none
// may be longer than max (zero: no limit).
type refLineLength struct {
	max, cur int
	long     bool
}

func (r *refLineLength) judge(c byte) {
	r.cur++
	if r.max > 0 && r.cur > r.max {
		r.long = true
	}
	if c == '\n' {
		r.cur = 0
	}
}

// refLineEndings is the plain definition that lineEndings must match:
// every CR is followed by LF, every LF follows a CR, there is no NUL, and
// the last line ends.
type refLineEndings struct {
	prev byte
	bad  bool
}

func newRefLineEndings() *refLineEndings { return &refLineEndings{prev: '\n'} }

func (r *refLineEndings) judge(c byte) {
	if c == 0 || c == '\n' && r.prev != '\r' || r.prev == '\r' && c != '\n' {
		r.bad = true
	}
	r.prev = c
}

func (r *refLineEndings) clean() bool { return !r.bad && r.prev == '\n' }

func (r *byteDataReader) Read(b []byte) (n int, err error) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		if r.strict != nil {
			r.strict.judge(c)
		}
		r.lines.judge(c)
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
		if r.strict != nil && !r.strict.clean() {
			err = ErrBareLineEnding
		} else if r.lines.long {
			err = ErrDataLineTooLong
		}
	}
	return
}

// byteLineLimitReader is the byte-at-a-time lineLimitReader.Read.
type byteLineLimitReader struct {
	R             io.Reader
	LineLimit     int
	curLineLength int
}

func (r *byteLineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkReader returns its data in reads of the given sizes, cycling, so
// buffers fill at awkward places.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

type readResult struct {
	out   []byte
	err   error
	after []byte // what is left for the next command
}

// readAll drains r with reads of the given sizes, then reads what is left
// in the buffered reader br.
func readAll(r io.Reader, br *bufio.Reader, sizes []int) readResult {
	var res readResult
	for i := 0; ; i++ {
		b := make([]byte, sizes[i%len(sizes)])
		n, err := r.Read(b)
		res.out = append(res.out, b[:n]...)
		if err != nil {
			res.err = err
			break
		}
		if i > 1<<20 {
			res.err = errors.New("no progress")
			break
		}
	}
	if br != nil {
		res.after, _ = io.ReadAll(br)
	}
	return res
}

func sameResult(t *testing.T, input []byte, got, want readResult) {
	t.Helper()
	if !bytes.Equal(got.out, want.out) || !errors.Is(got.err, want.err) && got.err != want.err || !bytes.Equal(got.after, want.after) {
		t.Fatalf("input %q:\ngot  %q, %v, rest %q\nwant %q, %v, rest %q", input, got.out, got.err, got.after, want.out, want.err, want.after)
	}
}

// checkDataReader compares the DATA reader with the reference, with and
// without StrictLineEndings, for lines of at most lineMax bytes (zero: no
// limit).
func checkDataReader(t *testing.T, input []byte, netSizes, readSizes []int, bufSize, lineMax int) {
	t.Helper()
	for _, strict := range []bool{false, true} {
		fastBR := bufio.NewReaderSize(&chunkReader{data: input, sizes: netSizes}, bufSize)
		slowBR := bufio.NewReaderSize(&chunkReader{data: input, sizes: netSizes}, bufSize)
		slow := &byteDataReader{r: slowBR, lines: refLineLength{max: lineMax}}
		if strict {
			slow.strict = newRefLineEndings()
		}
		got := readAll(&dataReader{r: fastBR, strict: strict, lines: lineLength{max: lineMax}}, fastBR, readSizes)
		want := readAll(slow, slowBR, readSizes)
		sameResult(t, input, got, want)
	}
}

// checkLineEndings feeds input to lineEndings in pieces of the given
// sizes, as BDAT chunks arrive, and compares its verdict with the
// reference's.
func checkLineEndings(t *testing.T, input []byte, sizes []int) {
	t.Helper()
	var got lineEndings
	for i, rest := 0, input; len(rest) > 0; i++ {
		n := min(len(rest), sizes[i%len(sizes)])
		got.scan(rest[:n])
		rest = rest[n:]
	}
	want := newRefLineEndings()
	for _, c := range input {
		want.judge(c)
	}
	if got.clean() != want.clean() {
		t.Fatalf("input %q in pieces of %v: clean %v, want %v", input, sizes, got.clean(), want.clean())
	}
}

func checkLineLimit(t *testing.T, input []byte, netSizes, readSizes []int, limit int) {
	t.Helper()
	got := readAll(&lineLimitReader{R: &chunkReader{data: input, sizes: netSizes}, LineLimit: limit}, nil, readSizes)
	want := readAll(&byteLineLimitReader{R: &chunkReader{data: input, sizes: netSizes}, LineLimit: limit}, nil, readSizes)
	sameResult(t, input, got, want)
}

// randomMessage builds DATA input from the pieces that drive the state
// machine: line ends, bare CR and LF, dots at line starts, end markers.
func randomMessage(rnd *rand.Rand) []byte {
	pieces := []string{"\r\n", "\r", "\n", ".", "..", ".\r\n", "\r\n.\r\n", "a", "hello world", "x\x00y", "\r\r\n", ".\r", "\r\n..\r\n", "a long line of text, longer than some of the limits tried"}
	var b []byte
	for range rnd.Intn(60) {
		b = append(b, pieces[rnd.Intn(len(pieces))]...)
	}
	if rnd.Intn(4) > 0 {
		b = append(b, "\r\n.\r\nQUIT\r\n"...)
	}
	return b
}

func TestDataReaderFastPathMatchesByteReader(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for range 20000 {
		input := randomMessage(rnd)
		netSizes := []int{1 + rnd.Intn(20), 1 + rnd.Intn(5), 1 + rnd.Intn(100)}
		readSizes := []int{1 + rnd.Intn(30), 1 + rnd.Intn(3), 1 + rnd.Intn(200)}
		checkDataReader(t, input, netSizes, readSizes, 16+rnd.Intn(64), rnd.Intn(40))
	}
}

func TestLineEndingsMatchesReference(t *testing.T) {
	rnd := rand.New(rand.NewSource(3))
	for range 20000 {
		checkLineEndings(t, randomMessage(rnd), []int{1 + rnd.Intn(20), 1 + rnd.Intn(3), 1 + rnd.Intn(100)})
	}
}

func TestLineLimitReaderMatchesByteReader(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	for range 20000 {
		input := randomMessage(rnd)
		netSizes := []int{1 + rnd.Intn(20), 1 + rnd.Intn(5), 1 + rnd.Intn(100)}
		readSizes := []int{1 + rnd.Intn(30), 1 + rnd.Intn(3), 1 + rnd.Intn(200)}
		checkLineLimit(t, input, netSizes, readSizes, 1+rnd.Intn(30))
	}
}

func FuzzDataReaderFastPath(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n"), uint8(3), uint8(7), uint8(16))
	// SMTP smuggling: a ".\r" at a line start is dropped from the output,
	// and the bare CR after it must still be seen.
	f.Add([]byte("a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n"), uint8(2), uint8(5), uint8(0))
	f.Add([]byte("hello\n.\r\nbare\rcr\x00\r\n.\r\n"), uint8(6), uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, input []byte, net, read, buf uint8) {
		checkDataReader(t, input, []int{1 + int(net)}, []int{1 + int(read), 1 + int(read)/3}, 16+int(buf), int(net)/4)
		checkLineLimit(t, input, []int{1 + int(net)}, []int{1 + int(read)}, 1+int(buf)/4)
		checkLineEndings(t, input, []int{1 + int(net), 1 + int(read)})
	})
}

// BenchmarkDataReader reads a 10 KiB message of 76-byte lines through the
// DATA reader and its line limit; "strict" adds the line-ending check
// of StrictLineEndings; sub-benchmark "bytewise" is the byte-at-a-time
// code the fast path replaced (the stream's line limit under the
// byte-wise DATA reader), for the ratio.
func BenchmarkDataReader(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 74)
	var msg []byte
	for len(msg) < 10240 {
		msg = append(append(msg, line...), "\r\n"...)
	}
	msg = append(msg, ".\r\n"...)
	buf := make([]byte, 32*1024)
	run := func(b *testing.B, newReader func(io.Reader) io.Reader) {
		b.SetBytes(int64(len(msg)))
		for range b.N {
			r := newReader(bytes.NewReader(msg))
			for {
				if _, err := r.Read(buf); err != nil {
					break
				}
			}
		}
	}
	b.Run("fast", func(b *testing.B) {
		run(b, func(src io.Reader) io.Reader {
			return &dataReader{r: bufio.NewReader(src), lines: lineLength{max: 2000}}
		})
	})
	b.Run("strict", func(b *testing.B) {
		run(b, func(src io.Reader) io.Reader {
			return &dataReader{r: bufio.NewReader(src), strict: true, lines: lineLength{max: 2000}}
		})
	})
	b.Run("bytewise", func(b *testing.B) {
		run(b, func(src io.Reader) io.Reader {
			return &byteDataReader{r: bufio.NewReader(&byteLineLimitReader{R: src, LineLimit: 2000})}
		})
	})
}
