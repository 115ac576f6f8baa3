package lists

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Maildir delivers into a Maildir: each recipient's copy is written to
// tmp/, fsynced, renamed into new/, and new/ is fsynced, so that a
// delivered message survives a crash. A Return-Path and a Delivered-To
// header are added, and lines end in LF as Maildir readers expect. The
// file name is made from the queue id and the recipient, so a repeated
// delivery replaces the first copy instead of adding a second one.
type Maildir struct {
	Dir string

	mu     sync.Mutex
	host   string   // this host's name, for file names
	newDir *os.File // Dir/new, kept open for its fsyncs
}

func (d *Maildir) String() string { return "maildir " + d.Dir }

// Deliver writes the copy of rcpt.
func (d *Maildir) Deliver(ctx context.Context, m *Message, rcpt string) error {
	newDir, err := d.open()
	if err != nil {
		return Temporary(err)
	}
	name := d.name(m, rcpt)
	tmp := filepath.Join(d.Dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		d.reset()
		return Temporary(err)
	}
	var b bytes.Buffer
	b.Grow(m.Size() + 200)
	fmt.Fprintf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", m.Record.From, rcpt)
	b.Write(bytes.ReplaceAll(m.d.Body, []byte("\r\n"), []byte("\n")))
	_, werr := f.Write(b.Bytes())
	serr := f.Sync()
	cerr := f.Close()
	if err := firstErr(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return Temporary(fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, filepath.Join(d.Dir, "new", name)); err != nil {
		os.Remove(tmp)
		d.reset()
		return Temporary(err)
	}
	// The rename is durable once the directory is.
	if err := newDir.Sync(); err != nil {
		d.reset()
		return Temporary(fmt.Errorf("fsync %s/new: %w", d.Dir, err))
	}
	return nil
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
	d.host, _ = os.Hostname()
	d.host = strings.NewReplacer("/", "\\057", ":", "\\072").Replace(d.host)
	d.newDir = f
	return f, nil
}

func (d *Maildir) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.newDir != nil {
		d.newDir.Close()
		d.newDir = nil
	}
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

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
