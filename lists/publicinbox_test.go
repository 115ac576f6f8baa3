package lists_test

import (
	"strings"
	"testing"
	"time"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

// The public-inbox recipe of docs/listd.md: an exec route to
// public-inbox-mda with PI_CONFIG and HOME in its env. The post is in the
// inbox; the same post delivered again is not added a second time; a
// recipient with no inbox is rejected (public-inbox-mda's exit 67); a
// post that fails public-inbox-mda's checks counts as delivered.
func TestPublicInboxThroughExec(t *testing.T) {
	pi := liststest.NewPublicInbox(t, "meta", "meta@lists.example.org")
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{
		{Match: "*@lists.example.org", To: &lists.Exec{Argv: []string{pi.MDA}, Env: []string{"PI_CONFIG=" + pi.Config, "HOME=" + pi.Home}}},
		{Match: "*@archive.example.org", To: &lists.Maildir{Dir: t.TempDir()}},
	}}
	e.run(t, fastRetries, r)

	id := queue.NewID(time.Now())
	data := "From: Alice <alice@example.com>\r\nTo: meta@lists.example.org\r\nSubject: hello " + id +
		"\r\nDate: Mon, 07 Dec 2026 06:00:00 +0000\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello.\r\n"
	e.putData(t, id, "alice@example.com", data, "meta@lists.example.org", "nobody@lists.example.org")
	waitFor(t, "delivery", e.drained(t))
	msgs := pi.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Message-ID: <"+id+"@example.com>") {
		t.Fatalf("the inbox holds %d messages, want ours:\n%s", len(msgs), strings.Join(msgs, "\n---\n"))
	}
	dl, err := e.q.DeadLetter(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dl.Rejected["meta@lists.example.org"]; ok || !strings.Contains(dl.Rejected["nobody@lists.example.org"], "exit status 67") {
		t.Errorf("rejected = %q, want nobody@ alone, with exit status 67", dl.Rejected)
	}

	// The same bytes to the same list again, as a redelivery brings them.
	e.putData(t, queue.NewID(time.Now()), "alice@example.com", data, "meta@lists.example.org", "copy@archive.example.org")
	waitFor(t, "the repeat", e.drained(t))
	if msgs := pi.Messages(); len(msgs) != 1 {
		t.Errorf("after a repeat the inbox holds %d messages, want 1", len(msgs))
	}

	// A post that fails public-inbox-mda's checks (here: no Date) exits
	// 0, so listd counts it delivered; it is only in the emergency
	// Maildir under HOME.
	id = queue.NewID(time.Now())
	data = "From: Alice <alice@example.com>\r\nTo: meta@lists.example.org\r\nSubject: no date\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello.\r\n"
	e.putData(t, id, "alice@example.com", data, "meta@lists.example.org")
	waitFor(t, "the post without a Date", e.drained(t))
	if _, err := e.q.DeadLetter(t.Context(), id); err == nil {
		t.Errorf("the post without a Date was dead-lettered; public-inbox-mda exits 0 for it")
	}
	if msgs := pi.Messages(); len(msgs) != 1 {
		t.Errorf("the inbox holds %d messages, want 1: the post without a Date is not added", len(msgs))
	}
	kept := false
	for _, m := range pi.Emergency() {
		kept = kept || strings.Contains(m, "Message-ID: <"+id+"@example.com>")
	}
	if !kept {
		t.Errorf("the post without a Date is not in %s/.public-inbox/emergency/new", pi.Home)
	}
}
