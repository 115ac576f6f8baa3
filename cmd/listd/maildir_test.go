package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"mxq/queue/queuetest"
)

// kill -9 of listd while Maildir commits are under way: every message
// acknowledged before the kill has its file in new/, nothing is left in
// tmp/, and the next listd delivers the rest, one file per message.
// (A kill keeps what the kernel holds; that it is also on the disk is the
// order of the steps: sync the files, name them in new/, sync new/, then
// acknowledge.)
func TestKill9MidMaildirCommit(t *testing.T) {
	bin := buildListd(t)
	r := queuetest.StartRedis(t)
	q := openQueue(t, r)
	dir := t.TempDir()
	conf := writeConfig(t, fmt.Sprintf(`redis = %q
concurrency = 32
lease = "1s"
[[route]]
match = "archive@lists.example.org"
maildir = %q
`, r.URL(), dir))

	const n = 800
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ids[i] = enqueue(t, q, "archive@lists.example.org")
			}
		}()
	}
	wg.Wait()

	first := startListd(t, bin, conf)
	waitFor(t, "a part of the queue to be consumed", func() bool {
		d, err := q.Depth(context.Background())
		return err == nil && d <= n-100
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited

	queued := map[string]bool{}
	recs, err := q.Peek(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		queued[rec.ID] = true
	}
	files := maildirCopies(t, dir)
	acked := 0
	for _, id := range ids {
		if queued[id] {
			continue
		}
		acked++
		if files[id] != 1 {
			t.Errorf("%s acknowledged with %d files in new/, want 1", id, files[id])
		}
	}
	if acked == n {
		t.Fatalf("all %d messages were done before the kill: the test proves nothing", n)
	}
	t.Logf("killed with %d of %d acknowledged, %d files in new/", acked, n, len(files))
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp/ after the kill", len(tmp))
	}

	startListd(t, bin, conf)
	waitFor(t, "the queue to drain", func() bool {
		d, err := q.Depth(context.Background())
		return err == nil && d == 0
	})
	files = maildirCopies(t, dir)
	for _, id := range ids {
		if files[id] != 1 {
			t.Errorf("%s: %d files in new/, want 1", id, files[id])
		}
	}
	if len(files) != n {
		t.Errorf("%d messages in new/, want %d", len(files), n)
	}
}

// maildirCopies counts the files in dir/new by queue id (the name is
// SECONDS.M<µs>Q<id>R<hash>.HOST).
func maildirCopies(t *testing.T, dir string) map[string]int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range es {
		_, rest, _ := strings.Cut(e.Name(), "Q")
		id, _, _ := strings.Cut(rest, "R")
		out[id]++
	}
	return out
}
