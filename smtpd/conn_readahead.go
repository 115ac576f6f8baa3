package smtpd

import (
	"io"
	"sync"
)

// readAhead reads bulk data in fewer system calls. go-smtp reads through
// a 4 KiB buffer, which would take a 10 KiB message in three system
// calls. Once a read has filled the caller's buffer (more is probably
// waiting), the next read goes into a larger buffer, borrowed from
// readAheads only until it is drained. A session waiting for its client
// reads into go-smtp's own buffer and holds none.
//
// Only the session's goroutine reads: no lock.
type readAhead struct {
	r io.Reader // the layer below

	buf  *[]byte // borrowed from readAheads while it holds bytes
	i, j int     // the unread bytes are (*buf)[i:j]
	err  error   // the error that came with the bytes in buf
	full bool    // the last read below filled the buffer it was given
}

const readAheadSize = 16 << 10

var readAheads = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func (ra *readAhead) Read(b []byte) (int, error) {
	if ra.buf == nil && ra.full && len(b) < readAheadSize {
		buf := readAheads.Get().(*[]byte)
		n, err := ra.r.Read(*buf)
		ra.full = n == len(*buf)
		if n == 0 {
			readAheads.Put(buf)
			return 0, err
		}
		ra.buf, ra.i, ra.j, ra.err = buf, 0, n, err
	}
	if ra.buf != nil {
		n := copy(b, (*ra.buf)[ra.i:ra.j])
		ra.i += n
		var err error
		if ra.i == ra.j {
			err = ra.err
			readAheads.Put(ra.buf)
			ra.buf, ra.err = nil, nil
		}
		return n, err
	}
	n, err := ra.r.Read(b)
	ra.full = n == len(b)
	return n, err
}
