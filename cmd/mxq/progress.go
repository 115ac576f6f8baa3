package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows how far a command over many items has come, on one line
// of the terminal rewritten at most every progressEvery; it writes
// nothing when its writer is not a terminal (a pipe, a file, -json), so
// scripts see only the result.
type progress struct {
	w     io.Writer // nil: quiet
	name  string
	total int
	shown time.Time
	now   func() time.Time
}

const progressEvery = 200 * time.Millisecond

// newProgress reports to w when w is a terminal and quiet is false.
func newProgress(w io.Writer, name string, total int, quiet bool) *progress {
	p := &progress{name: name, total: total, now: time.Now}
	if !quiet && isTerminal(w) {
		p.w = w
	}
	return p
}

// step says that done items are finished, failed of them in error.
func (p *progress) step(done, failed int) {
	if p.w == nil || done < p.total && p.now().Sub(p.shown) < progressEvery {
		return
	}
	p.shown = p.now()
	fmt.Fprintf(p.w, "\r%s: %d of %d (%d%%), %d failed", p.name, done, p.total, 100*done/max(p.total, 1), failed)
}

// end finishes the line, so that what follows starts on its own.
func (p *progress) end() {
	if p.w != nil && !p.shown.IsZero() {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a character device, as a terminal is.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
