package lists

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// crlfText returns n bytes that are mostly CR, LF and CRLF, so that every
// way a CR can meet a chunk boundary comes up.
func crlfText(rng *rand.Rand, n int) []byte {
	const alphabet = "\r\n\r\na\r\r\n."
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return b
}

// splits cuts b at random places, from empty pieces to pieces longer
// than the rest.
func splits(rng *rand.Rand, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), rng.IntN(8)+rng.IntN(2)*rng.IntN(300))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// lfByChunks runs appendLF over chunks, each from its own slice, as a
// whole and returns the result.
func lfByChunks(chunks [][]byte) []byte {
	var buf []byte
	cr := false
	for _, c := range chunks {
		buf, cr = appendLF(buf, c, cr)
	}
	if cr {
		buf = append(buf, '\r')
	}
	return buf
}

// chunkReader hands out its chunks one per Read (or less, when p is
// short), then fails with err, or ends with io.EOF.
type chunkReader struct {
	chunks [][]byte
	err    error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// checkLF checks appendLF on data cut into chunks, from separate slices
// and in place through copyLF (the input in the output's free space),
// against bytes.ReplaceAll.
func checkLF(t *testing.T, data []byte, chunks [][]byte, bufCap int) {
	t.Helper()
	want := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	if got := lfByChunks(chunks); !bytes.Equal(got, want) {
		t.Fatalf("appendLF of %q in chunks %q:\n got %q\nwant %q", data, chunks, got, want)
	}
	var out bytes.Buffer
	in := &chunkReader{chunks: append([][]byte(nil), chunks...)}
	if err := copyLF(&out, in, make([]byte, 0, bufCap)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("copyLF of %q in chunks %q with a buffer of %d:\n got %q\nwant %q", data, chunks, bufCap, out.Bytes(), want)
	}
}

func TestAppendLF(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
	}{
		{"empty", nil},
		{"CRLF", []string{"a\r\nb\r\n"}},
		{"CR ends a chunk, LF starts the next", []string{"a\r", "\nb"}},
		{"CR ends a chunk, CR starts the next", []string{"a\r", "\r\n"}},
		{"CR ends a chunk, text starts the next", []string{"a\r", "b"}},
		{"CR alone in chunks", []string{"\r", "\r", "\r", "\n"}},
		{"CR at the very end", []string{"a\r"}},
		{"bare LF", []string{"a\nb\n"}},
		{"LF then CR", []string{"\n\r", "\n"}},
		{"empty chunks around a CR", []string{"", "\r", "", "\n", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			checkLF(t, bytes.Join(chunks, nil), chunks, 600)
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		data := crlfText(rng, rng.IntN(3000))
		checkLF(t, data, splits(rng, data), 513+rng.IntN(2000))
	}
}

// A read error reaches copyLF's caller as one: the copy is then thrown
// away, never completed.
func TestCopyLFReadError(t *testing.T) {
	broken := errors.New("connection reset")
	in := &chunkReader{chunks: [][]byte{[]byte("a\r\nb\r")}, err: broken}
	var out bytes.Buffer
	if err := copyLF(&out, in, make([]byte, 0, 1024)); !errors.Is(err, broken) {
		t.Errorf("copyLF: %v, want %v", err, broken)
	}
}

func FuzzAppendLF(f *testing.F) {
	for _, s := range []string{"", "\r\n", "\r\r\n", "a\rb", "\r", "\n\r", "\r\n.\r\n", "x\r\r\r\n\n"} {
		f.Add([]byte(s), uint64(0), uint16(600))
		f.Add([]byte(s), uint64(7), uint16(513))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, bufCap uint16) {
		rng := rand.New(rand.NewPCG(seed, 0))
		checkLF(t, data, splits(rng, data), 1+int(bufCap)%8192)
	})
}
