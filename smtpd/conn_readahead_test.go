package smtpd

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// chunkReader gives its data in chunks of random size, at most what the
// caller asks, and errEnd with the last bytes. It records the size of
// each buffer it is given, and whether it filled it.
type chunkReader struct {
	data   []byte
	rnd    *rand.Rand
	asked  []int
	filled []bool
}

func (c *chunkReader) Read(b []byte) (int, error) {
	c.asked = append(c.asked, len(b))
	if len(c.data) == 0 {
		c.filled = append(c.filled, false)
		return 0, io.ErrUnexpectedEOF // read again after errEnd
	}
	n := copy(b, c.data[:min(len(c.data), 1+c.rnd.Intn(3*len(b)))]) // often the whole buffer
	c.data = c.data[n:]
	c.filled = append(c.filled, n == len(b))
	if len(c.data) == 0 {
		return n, errEnd
	}
	return n, nil
}

var errEnd = errors.New("the end")

// The read-ahead passes on exactly the bytes below, in order, and the
// error that came with the last of them, once, after them; it reads
// ahead only after a read filled the caller's buffer, and gives its buffer
// back once drained.
func TestReadAhead(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		want := make([]byte, 100<<10+rnd.Intn(100<<10))
		rnd.Read(want)
		below := &chunkReader{data: want, rnd: rnd}
		ra := &readAhead{r: below}
		var got []byte
		var err error
		aheads := 0
		for reads := 0; err == nil; reads++ {
			if reads > len(want) {
				t.Fatalf("seed %d: %d reads for %d bytes", seed, reads, len(want))
			}
			b := make([]byte, []int{4096, 1, 100, 4096, 20000}[rnd.Intn(5)])
			asked := len(below.asked)
			var n int
			n, err = ra.Read(b)
			got = append(got, b[:n]...)
			if len(below.asked) > asked && below.asked[asked] == readAheadSize && len(b) != readAheadSize {
				aheads++
				if asked == 0 || !below.filled[asked-1] {
					t.Fatalf("seed %d: read ahead after a read that did not fill its buffer", seed)
				}
			}
			if err != nil && ra.buf != nil {
				t.Fatalf("seed %d: %v returned with %d bytes still held", seed, err, ra.j-ra.i)
			}
		}
		if err != errEnd {
			t.Fatalf("seed %d: %v, want %v", seed, err, errEnd)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: read %d bytes that differ from the %d below", seed, len(got), len(want))
		}
		if aheads == 0 {
			t.Errorf("seed %d: never read ahead", seed)
		}
		if ra.buf != nil {
			t.Errorf("seed %d: drained, but still holds its buffer", seed)
		}
	}
}
