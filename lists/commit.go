package lists

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// A Maildir copy is durable once its data and inode are on disk and the
// directory entry in new/ is too. Doing that copy by copy costs a file
// fsync and a directory fsync per message, each a synchronous write plus
// a cache flush of the disk. Concurrent deliveries into one Maildir
// instead share a commit (a queue.Batcher): whoever finds no commit
// running makes its copy durable at once; the copies written meanwhile
// wait, and are made durable together by one of them once that commit is
// over.

// pendingCopy is a copy written in tmp/ (f still open) and waiting for a
// commit.
type pendingCopy struct {
	f        *os.File
	unnamed  bool   // f has no name yet (openUnnamed); else it is tmp
	tmp, dst string // tmp/NAME and new/NAME
	err      error  // the commit's result for this copy
}

// discard removes a copy that will not be committed.
func (c *pendingCopy) discard() {
	c.f.Close()
	if !c.unnamed {
		os.Remove(c.tmp)
	}
}

// publish gives the synced copy its name in new/, replacing a copy of an
// earlier attempt (the name is the same: see Maildir.name).
func (c *pendingCopy) publish() error {
	if !c.unnamed {
		return os.Rename(c.tmp, c.dst)
	}
	err := linkUnnamed(c.f, c.dst)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	// A link cannot replace a file; a rename can.
	os.Remove(c.tmp)
	if err := linkUnnamed(c.f, c.tmp); err != nil {
		return err
	}
	c.unnamed = false // from here on it is tmp, to remove on failure
	return os.Rename(c.tmp, c.dst)
}

// commitCopies makes cs durable: each file is fsynced (all at once, so
// that the disk sees them together and the inode-table blocks they share
// are written once), each synced file gets its name in new/, then new/
// is fsynced once. A copy whose fsync or naming fails gets its own error
// and its file is removed; a failed fsync of new/ is the error of every
// copy named in this commit.
func commitCopies(newDir *os.File, cs []*pendingCopy) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.f.Sync(); err != nil {
				c.err = fmt.Errorf("fsync %s: %w", c.f.Name(), err)
			}
		}()
	}
	wg.Wait()
	named := 0
	for _, c := range cs {
		if c.err == nil {
			c.err = c.publish()
		}
		if cerr := c.f.Close(); c.err == nil && cerr != nil {
			c.err = fmt.Errorf("close %s: %w", c.f.Name(), cerr)
		}
		if c.err != nil {
			if !c.unnamed {
				os.Remove(c.tmp)
			}
			continue
		}
		named++
	}
	if named == 0 {
		return
	}
	if err := newDir.Sync(); err != nil {
		for _, c := range cs {
			if c.err == nil {
				c.err = fmt.Errorf("fsync %s: %w", newDir.Name(), err)
			}
		}
	}
}
