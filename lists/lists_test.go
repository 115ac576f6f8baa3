package lists_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

func TestRouterLookup(t *testing.T) {
	r := &lists.Router{Routes: []lists.Route{
		{Match: "announce@lists.example.org"},
		{Match: "~*/*@lists.example.org"},
		{Match: "u.*.*@lists.example.org"},
		{Match: "*@other.example.org"},
	}}
	tests := []struct {
		addr string
		want int
	}{
		{"announce@lists.example.org", 0},
		{"Announce+subscribe@LISTS.example.org", 0},
		{"~sircmpwn/sr.ht-dev@lists.example.org", 1},
		{"~sircmpwn/sr.ht-dev+subscribe@lists.example.org", 1},
		{"~SirCmpwn/Dev@Lists.Example.Org", 1},
		{"u.sircmpwn.sr.ht-dev@lists.example.org", 2},
		{"anything@other.example.org", 3},
		{"~a/b/c@lists.example.org", -1},
		{"nobody@lists.example.org", -1},
		{"announce@lists.example.org.evil", -1},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := r.Lookup(tt.addr); got != tt.want {
				t.Errorf("Lookup(%q) = %d, want %d", tt.addr, got, tt.want)
			}
		})
	}
}

func TestMaildir(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	r := &lists.Router{Routes: []lists.Route{{Match: "~*/*@lists.example.org", To: &lists.Maildir{Dir: dir}}}}
	e.run(t, fastRetries, r)
	id := e.put(t, "alice@example.com", "~bob/dev@lists.example.org", "~bob/announce@lists.example.org")
	waitFor(t, "delivery", e.drained(t))
	files := maildirFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d files in new/, want 2: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.HasPrefix(s, "Return-Path: <alice@example.com>\nDelivered-To: ~bob/") || strings.Contains(s, "\r") || !strings.Contains(s, "Subject: test "+id) {
			t.Errorf("%s:\n%s", f, s)
		}
		if !strings.Contains(filepath.Base(f), "Q"+id+"R") {
			t.Errorf("file name %s does not carry the queue id", f)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("files left in tmp/: %v", tmp)
	}
}

// A recipient without a route is a permanent failure: dead letter, not a
// silent drop; the routed recipient is delivered once.
func TestNoRouteIsDeadLetter(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	r := &lists.Router{Routes: []lists.Route{{Match: "known@lists.example.org", To: &lists.Maildir{Dir: dir}}}}
	e.run(t, fastRetries, r)
	id := e.put(t, "alice@example.com", "known@lists.example.org", "unknown@lists.example.org")
	waitFor(t, "dead letter", e.drained(t))
	dl, err := e.q.DeadLetter(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "<unknown@lists.example.org>: no route") {
		t.Errorf("reason = %q", dl.Reason)
	}
	if diff := cmp.Diff([]string{"known@lists.example.org"}, dl.Delivered); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if n := len(maildirFiles(t, dir)); n != 1 {
		t.Errorf("%d files delivered, want 1", n)
	}
}

// The LMTP server answers 4xx for a while: retried with back-off, then
// delivered once. Then one recipient gets 5xx: only that one is
// dead-lettered; a retry after the fix delivers it, and not the other
// one again.
func TestLMTPTemporaryThenPermanent(t *testing.T) {
	e := newEnv(t)
	srv := liststest.StartMTA(t, true)
	var fails atomic.Int32
	srv.SetReply(func(rcpt string) error {
		if fails.Add(1) <= 3 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		if strings.HasPrefix(rcpt, "broken") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such list"}
		}
		return nil
	})
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.LMTP{Addr: srv.Addr}}}}
	e.run(t, fastRetries, r)

	ctx := context.Background()
	id := e.put(t, "alice@example.com", "dev@lists.example.org")
	waitFor(t, "delivery after 4xx", e.drained(t))
	if n := srv.Count("dev@lists.example.org"); n != 1 {
		t.Errorf("dev got %d copies, want 1", n)
	}
	if _, err := e.q.DeadLetter(ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("dead letter after 4xx then 250: %v", err)
	}

	id = e.put(t, "alice@example.com", "ok@lists.example.org", "broken@lists.example.org")
	waitFor(t, "dead letter", e.drained(t))
	dl, err := e.q.DeadLetter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "<broken@lists.example.org>") || !strings.Contains(dl.Reason, "550") {
		t.Errorf("reason = %q", dl.Reason)
	}
	srv.SetReply(nil) // the list now exists
	if err := e.q.RetryDead(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after dead retry", e.drained(t))
	if a, b := srv.Count("ok@lists.example.org"), srv.Count("broken@lists.example.org"); a != 1 || b != 1 {
		t.Errorf("ok got %d, broken got %d; want 1 each", a, b)
	}
	if st, _ := e.q.Stats(ctx); st.Dead != 0 {
		t.Errorf("%d dead letters left", st.Dead)
	}
}

func TestSMTPRelay(t *testing.T) {
	e := newEnv(t)
	srv := liststest.StartMTA(t, false)
	srv.SetReply(func(rcpt string) error {
		if strings.HasPrefix(rcpt, "gone") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "gone"}
		}
		return nil
	})
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.SMTP{Addr: srv.Addr}}}}
	e.run(t, fastRetries, r)
	id := e.put(t, "", "a@lists.example.org", "b@lists.example.org", "gone@lists.example.org")
	waitFor(t, "delivery", e.drained(t))
	if a, b := srv.Count("a@lists.example.org"), srv.Count("b@lists.example.org"); a != 1 || b != 1 {
		t.Errorf("a got %d, b got %d; want 1 each", a, b)
	}
	if dl, err := e.q.DeadLetter(context.Background(), id); err != nil || dl.Rejected["gone@lists.example.org"] == "" {
		t.Errorf("dead letter = %+v, %v; want gone@ rejected", dl, err)
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "deliver")
	// Fails with EX_TEMPFAIL on its first run, rejects "bad", and records
	// its environment and input otherwise.
	src := `#!/bin/sh
set -e
out=` + dir + `
if [ ! -e "$out/tried" ]; then touch "$out/tried"; echo "busy" >&2; exit 75; fi
case "$RECIPIENT" in bad@*) echo "no such list: $RECIPIENT" >&2; exit 67;; esac
{ echo "SENDER=$SENDER RECIPIENT=$RECIPIENT ORIGINAL_RECIPIENT=$ORIGINAL_RECIPIENT QUEUE_ID=$QUEUE_ID"; cat; } > "$out/got-$RECIPIENT"
`
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Exec{Argv: []string{script}}}}}
	e.run(t, fastRetries, r)
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "alice@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org", Params: map[string]string{"ORCPT": "rfc822;Dev+x@lists.example.org"}}, {Addr: "bad@lists.example.org"}}}
	if _, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: []byte("Subject: x\r\n\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", e.drained(t))
	got, err := os.ReadFile(filepath.Join(dir, "got-dev@lists.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	want := "SENDER=alice@example.com RECIPIENT=dev@lists.example.org ORIGINAL_RECIPIENT=Dev+x@lists.example.org QUEUE_ID=" + rec.ID + "\nSubject: x\r\n\r\nbody\r\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("program saw (-want +got):\n%s", diff)
	}
	dl, err := e.q.DeadLetter(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "exit status 67") || !strings.Contains(dl.Reason, "no such list: bad@lists.example.org") {
		t.Errorf("reason = %q, want the exit status and stderr", dl.Reason)
	}
	if len(dl.Attempts) < 2 || !strings.Contains(dl.Attempts[0].Error, "EX_TEMPFAIL") || !strings.Contains(dl.Attempts[0].Error, "busy") {
		t.Errorf("attempts = %+v, want the EX_TEMPFAIL one first", dl.Attempts)
	}
}

// A program that runs past its timeout is killed with its children, and
// the attempt counts as temporary.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hang")
	src := "#!/bin/sh\nsleep 60 &\necho $! > " + dir + "/child\nwait\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	opt := fastRetries
	opt.MaxAttempts = 1
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Exec{Argv: []string{script}, Timeout: 200 * time.Millisecond}}}}
	e.run(t, opt, r)
	id := e.put(t, "a@example.com", "l@lists.example.org")
	waitFor(t, "dead letter", e.drained(t))
	dl, err := e.q.DeadLetter(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "stopped after 200ms") || !strings.Contains(dl.Reason, "gave up after 1 attempts") {
		t.Errorf("reason = %q, want a timeout counted as temporary", dl.Reason)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "the child to be gone", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// Gone, or a zombie waiting for init to reap it.
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}
