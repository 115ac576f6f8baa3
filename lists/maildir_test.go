package lists_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mxq/lists"
	"mxq/queue"
)

// One copy of a shared Maildir commit cannot be named (new/NAME is in the
// way): its message is retried and not acknowledged, the others of the
// same commits are delivered; once the way is clear it is delivered too,
// one file per message.
func TestMaildirCopyFailsAlone(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	const n = 40
	for range n {
		e.put(t, "alice@example.com", "dev@lists.example.org")
	}
	recs, err := e.q.Peek(context.Background(), n)
	if err != nil || len(recs) != n {
		t.Fatalf("peek: %d records, %v", len(recs), err)
	}
	victim := recs[n/2]
	blocker := filepath.Join(dir, "new", maildirName(t, &victim, "dev@lists.example.org"), "x")
	if err := os.MkdirAll(blocker, 0o700); err != nil {
		t.Fatal(err)
	}

	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Maildir{Dir: dir}}}}
	e.run(t, fastRetries, r)
	// n entries in new/: n-1 copies and the directory in the way.
	waitFor(t, "every other message to be delivered, and the blocked one to wait for a retry", func() bool {
		s, err := e.q.Scheduled(context.Background(), 10)
		return err == nil && len(maildirFiles(t, dir)) == n && len(s) == 1 && s[0].Record.ID == victim.ID
	})
	if err := os.RemoveAll(filepath.Dir(blocker)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", e.drained(t))
	files := maildirFiles(t, dir)
	if len(files) != n {
		t.Errorf("%d files in new/, want %d", len(files), n)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v, %v", f, fi.Mode(), err)
		}
	}
}

// maildirName is the file name lists.Maildir gives rec's copy for rcpt:
// SECONDS.M<µs>Q<queue id>R<recipient hash>.HOST.
func maildirName(t *testing.T, rec *queue.Record, rcpt string) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host = strings.NewReplacer("/", "\\057", ":", "\\072").Replace(host)
	h := sha256.Sum256([]byte(strings.ToLower(rcpt)))
	a := rec.Arrived
	return fmt.Sprintf("%d.M%06dQ%sR%s.%s", a.Unix(), a.Nanosecond()/1000, rec.ID, hex.EncodeToString(h[:4]), host)
}
