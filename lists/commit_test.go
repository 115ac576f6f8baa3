package lists

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// newTestMaildir returns a Maildir in a temporary directory, opened, and
// its new/.
func newTestMaildir(t *testing.T) (*Maildir, *os.File) {
	t.Helper()
	d := &Maildir{Dir: t.TempDir()}
	newDir, err := d.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { newDir.Close() })
	return d, newDir
}

// written creates and writes the copy called name.
func written(t *testing.T, d *Maildir, name string) *pendingCopy {
	t.Helper()
	c, err := d.create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c.f, "Subject: %s\n\nbody\n", name); err != nil {
		t.Fatal(err)
	}
	return c
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// One copy of a commit fails (its file cannot be synced, or its name
// cannot be made): only that copy reports an error, and only the others
// are in new/. Nothing is left in tmp/.
func TestCommitOneCopyFails(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(fmt.Sprintf("unnamed=%v", unnamed), func(t *testing.T) {
			d, newDir := newTestMaildir(t)
			d.noUnnamed.Store(!unnamed)
			a, b, c := written(t, d, "a"), written(t, d, "b"), written(t, d, "c")
			if a.unnamed != unnamed {
				t.Fatalf("copy unnamed = %v, want %v", a.unnamed, unnamed)
			}
			b.f.Close() // its fsync fails
			c.dst = filepath.Join(d.Dir, "gone", "c")
			commitCopies(newDir, []*pendingCopy{a, b, c})
			if a.err != nil {
				t.Errorf("a: %v, want success", a.err)
			}
			if !errors.Is(b.err, os.ErrClosed) {
				t.Errorf("b: %v, want the fsync error", b.err)
			}
			if c.err == nil {
				t.Errorf("c: no error for a copy that could not be named")
			}
			if got := names(t, filepath.Join(d.Dir, "new")); len(got) != 1 || got[0] != "a" {
				t.Errorf("new/ = %v, want [a]", got)
			}
			if got := names(t, filepath.Join(d.Dir, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ = %v, want it empty", got)
			}
		})
	}
}

// A failed sync of new/ is the error of every copy of the commit: none
// of them may be acknowledged.
func TestCommitDirectorySyncFails(t *testing.T) {
	d, newDir := newTestMaildir(t)
	cs := []*pendingCopy{written(t, d, "a"), written(t, d, "b")}
	newDir.Close()
	commitCopies(newDir, cs)
	for _, c := range cs {
		if !errors.Is(c.err, os.ErrClosed) {
			t.Errorf("%s: %v, want the error of the directory's fsync", c.dst, c.err)
		}
	}
}

// A repeated delivery replaces the copy of the earlier attempt: one file
// per name, with the later content.
func TestCommitReplacesEarlierCopy(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(fmt.Sprintf("unnamed=%v", unnamed), func(t *testing.T) {
			d, newDir := newTestMaildir(t)
			d.noUnnamed.Store(!unnamed)
			first := written(t, d, "m")
			commitCopies(newDir, []*pendingCopy{first})
			again := written(t, d, "m")
			fmt.Fprintf(again.f, "again\n")
			commitCopies(newDir, []*pendingCopy{again})
			if first.err != nil || again.err != nil {
				t.Fatalf("errors: %v, %v", first.err, again.err)
			}
			b, err := os.ReadFile(filepath.Join(d.Dir, "new", "m"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "Subject: m\n\nbody\nagain\n"; string(b) != want {
				t.Errorf("new/m = %q, want %q", b, want)
			}
			if got := names(t, filepath.Join(d.Dir, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ = %v, want it empty", got)
			}
		})
	}
}
