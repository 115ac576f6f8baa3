package lists

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"mxq/queue"
)

// Maildir delivers into a Maildir: each recipient's copy is written in
// tmp/, made durable, given its name in new/, and new/ is made durable, so
// that a delivered message survives a crash; Deliver returns nil only
// after all of that. On Linux the file in tmp/ has no name while it is
// written (O_TMPFILE) and is linked into new/ once synced, so a reader
// never sees a partial copy and a crash leaves nothing behind in tmp/;
// elsewhere it is tmp/NAME, renamed into new/. A Return-Path and a Delivered-To header are added,
// and lines end in LF as Maildir readers expect. The file name is made
// from the queue id and the recipient, so a repeated delivery replaces
// the first copy instead of adding a second one.
//
// Copies written at the same moment (by concurrent deliveries) are
// committed together: one commit syncs every copy written since the last
// one, renames each into new/, and syncs new/ once for all of them. A
// copy whose write, sync or rename fails is reported to its own delivery
// only; a failed sync of new/ fails every copy of that commit. See
// commit.go.
type Maildir struct {
	Dir string

	mu     sync.Mutex
	host   string   // this host's name, for file names
	newDir *os.File // Dir/new, kept open for its fsyncs
	group  queue.Batcher[*pendingCopy]
	// noUnnamed: this system has no O_TMPFILE or no /proc; copies are
	// made in tmp/ by name.
	noUnnamed atomic.Bool
}

func (d *Maildir) String() string { return "maildir " + d.Dir }

// Deliver writes the copy of rcpt.
func (d *Maildir) Deliver(ctx context.Context, m *Message, rcpt string) error {
	newDir, err := d.open()
	if err != nil {
		return Temporary(err)
	}
	name := d.name(m, rcpt)
	c, err := d.create(name)
	if err != nil {
		d.reset()
		return Temporary(err)
	}
	if err := writeMaildirCopy(c.f, m, rcpt); err != nil {
		c.discard()
		return Temporary(err)
	}
	d.group.Do(c, func(cs []*pendingCopy) { commitCopies(newDir, cs) })
	if err := c.err; err != nil {
		d.reset() // in case the Maildir was moved or removed
		return Temporary(err)
	}
	return nil
}

// create opens the file of a new copy: unnamed in tmp/ where the system
// can (see openUnnamed), else tmp/name.
func (d *Maildir) create(name string) (*pendingCopy, error) {
	c := &pendingCopy{tmp: filepath.Join(d.Dir, "tmp", name), dst: filepath.Join(d.Dir, "new", name)}
	if !d.noUnnamed.Load() {
		f, err := openUnnamed(filepath.Join(d.Dir, "tmp"))
		if err == nil {
			c.f, c.unnamed = f, true
			return c, nil
		}
		if !unnamedUnsupported(err) {
			return nil, err
		}
		d.noUnnamed.Store(true)
	}
	f, err := os.OpenFile(c.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	c.f = f
	return c, nil
}

// unnamedUnsupported reports whether err means that the system or the
// file system has no O_TMPFILE.
func unnamedUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EINVAL)
}

// open makes the Maildir's directories and opens new/ once; reset makes
// the next delivery do it again (the directory was moved or removed).
func (d *Maildir) open() (*os.File, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.newDir != nil {
		return d.newDir, nil
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(d.Dir, "new"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		d.noUnnamed.Store(true) // linkUnnamed needs /proc
	}
	d.host, _ = os.Hostname()
	d.host = strings.NewReplacer("/", "\\057", ":", "\\072").Replace(d.host)
	d.newDir = f
	return f, nil
}

// reset makes the next delivery open new/ afresh. The old handle is not
// closed: a commit may still be syncing it; the garbage collector closes
// it.
func (d *Maildir) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.newDir = nil
}

// name is "SECONDS.M<µs>Q<queue id>R<recipient hash>.HOST", stable for one
// queue id and recipient.
func (d *Maildir) name(m *Message, rcpt string) string {
	d.mu.Lock()
	host := d.host
	d.mu.Unlock()
	h := sha256.Sum256([]byte(strings.ToLower(rcpt)))
	t := m.Record.Arrived
	return fmt.Sprintf("%d.M%06dQ%sR%s.%s", t.Unix(), t.Nanosecond()/1000, m.Record.ID, hex.EncodeToString(h[:4]), host)
}

// writeMaildirCopy writes the copy of m for rcpt to f with the line
// endings of a Maildir (LF), from the body as it is read from the queue.
func writeMaildirCopy(f *os.File, m *Message, rcpt string) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := fmt.Appendf((*bp)[:0], "Return-Path: <%s>\nDelivered-To: %s\n", m.Record.From, rcpt)
	return copyLF(f, m.Body(), buf)
}

// copyLF writes buf, then what r reads with every CRLF turned into LF, to
// w. It reads into buf's free space and converts there, so that a copy
// holds buf and nothing else whatever the message's size.
func copyLF(w io.Writer, r io.Reader, buf []byte) error {
	cr := false // the last read ended in a CR
	for {
		if cap(buf)-len(buf) < 512 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		in := buf[len(buf) : len(buf)+n]
		buf, cr = appendLF(buf, in, cr)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the message: %w", err)
		}
	}
	if cr {
		buf = append(buf, '\r')
	}
	_, err := w.Write(buf)
	return err
}

// appendLF appends in to buf with every CRLF turned into LF. in may lie in
// buf's free space: the output never overtakes the input. cr says the
// previous input ended in a CR that was held back; the result says the
// same of this input.
func appendLF(buf, in []byte, cr bool) ([]byte, bool) {
	if len(in) == 0 {
		return buf, cr
	}
	if cr && in[0] != '\n' {
		// Never in a stored message (mxd refuses bare CR), but kept as it
		// was. The CR then takes in's first byte's place in the output,
		// and the rest follows from a copy.
		rest := append([]byte(nil), in...)
		buf = append(buf, '\r')
		return appendLF(buf, rest, false)
	}
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\r')
		if i < 0 {
			return append(buf, in...), false
		}
		buf = append(buf, in[:i]...)
		switch {
		case i+1 == len(in):
			return buf, true
		case in[i+1] == '\n':
			in = in[i+1:] // the LF is copied with the next run
		default:
			buf = append(buf, '\r')
			in = in[i+1:]
		}
	}
	return buf, false
}

// copyBufs are the buffers Maildir copies are written through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
