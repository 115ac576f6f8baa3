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
// instead share a commit: whoever finds no commit running becomes the
// leader, takes every copy written so far, and makes them durable
// together, while the next copies are written; the copies that arrive
// meanwhile form the next commit.

// pendingCopy is a copy written in tmp/ (f still open) and waiting for a
// commit.
type pendingCopy struct {
	f        *os.File
	unnamed  bool   // f has no name yet (openUnnamed); else it is tmp
	tmp, dst string // tmp/NAME and new/NAME
	err      error  // the commit's result for this copy
	done     bool
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

// commitGroup runs one commit at a time and gathers the copies that
// arrive meanwhile into the next.
type commitGroup struct {
	mu      sync.Mutex
	cond    *sync.Cond
	waiting []*pendingCopy
	running bool
}

// commit adds c to the next commit and returns c's result once that
// commit is over. run makes a batch durable and sets each copy's err.
func (g *commitGroup) commit(c *pendingCopy, run func([]*pendingCopy)) error {
	g.mu.Lock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.waiting = append(g.waiting, c)
	for g.running && !c.done {
		g.cond.Wait()
	}
	if c.done {
		g.mu.Unlock()
		return c.err
	}
	g.running = true
	batch := g.waiting
	g.waiting = nil
	g.mu.Unlock()

	run(batch)

	g.mu.Lock()
	for _, b := range batch {
		b.done = true
	}
	g.running = false
	g.cond.Broadcast()
	g.mu.Unlock()
	return c.err
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
