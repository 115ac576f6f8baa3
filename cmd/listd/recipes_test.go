package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/lists/liststest"
	"mxq/queue"
	"mxq/queue/queuetest"
)

// recipe returns the fenced code block that follows the line
// "<!-- recipe: name -->" in docs/listd.md.
func recipe(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open("../../docs/listd.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "<!-- recipe: "+name+" -->" {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("docs/listd.md: no code block right after the recipe mark %q", name)
		}
		var b strings.Builder
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "```") {
			b.WriteString(sc.Text() + "\n")
		}
		return b.String()
	}
	t.Fatalf("docs/listd.md has no recipe %q", name)
	return ""
}

// adapt returns text with each of the recipe's paths and addresses
// replaced by the test's, failing when one is not in it: a recipe that
// changed must change its test too.
func adapt(t *testing.T, text string, oldnew ...string) string {
	t.Helper()
	for i := 0; i < len(oldnew); i += 2 {
		if !strings.Contains(text, oldnew[i]) {
			t.Fatalf("the recipe has no %q:\n%s", oldnew[i], text)
		}
		text = strings.ReplaceAll(text, oldnew[i], oldnew[i+1])
	}
	return text
}

// post is a message from alice to list with id in its Subject and
// Message-ID, with every header field public-inbox-mda checks.
func post(id, list string) string {
	return "From: Alice <alice@example.com>\r\nTo: " + list + "\r\nSubject: hello " + id +
		"\r\nDate: Mon, 07 Dec 2026 06:00:00 +0000\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello.\r\n"
}

// enqueueData queues data from alice to rcpts under id.
func enqueueData(t *testing.T, q *queue.Queue, id, data string, rcpts ...string) {
	t.Helper()
	rec := &queue.Record{ID: id, Host: "mx1.example.org", From: "alice@example.com", Arrived: time.Now()}
	for _, r := range rcpts {
		rec.Rcpts = append(rec.Rcpts, queue.Recipient{Addr: r})
	}
	res, err := q.Enqueue(t.Context(), &queue.Message{Record: rec, Header: []byte("Received: from test\r\n"), Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate {
		t.Fatalf("the queue took %s for a copy of a message it has", id)
	}
}

// The recipes of docs/listd.md, as written there, run by listd with the
// real list software. An extra Maildir route lets a test queue the same
// bytes to a list again, as a redelivery brings them: the queue folds an
// identical envelope and message into the first.
func TestRecipes(t *testing.T) {
	bin := buildListd(t)
	// start runs listd with the route text and a Maildir route for
	// *@archive.example.org, and returns the queue.
	start := func(t *testing.T, routes string) *queue.Queue {
		r := queuetest.StartRedis(t)
		q := openQueue(t, r)
		conf := fmt.Sprintf("redis = %q\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\n%s\n[[route]]\nmatch = \"*@archive.example.org\"\nmaildir = %q\n",
			r.URL(), routes, t.TempDir())
		startListd(t, bin, writeConfig(t, conf))
		return q
	}
	drained := func(q *queue.Queue) func() bool {
		return func() bool {
			b, err := q.Backlog(t.Context())
			return err == nil && b.Depth() == 0
		}
	}

	t.Run("public-inbox", func(t *testing.T) {
		pi := liststest.NewPublicInbox(t, "meta", "meta@lists.example.org")
		q := start(t, adapt(t, recipe(t, "public-inbox"),
			"/usr/bin/public-inbox-mda", pi.MDA,
			"/var/lib/public-inbox/config", pi.Config,
			"/var/lib/public-inbox", pi.Home))
		id := queue.NewID(time.Now())
		enqueueData(t, q, id, post(id, "meta@lists.example.org"), "meta@lists.example.org")
		waitFor(t, "delivery", drained(q))
		msgs := pi.Messages()
		if len(msgs) != 1 || !strings.Contains(msgs[0], "Message-ID: <"+id+"@example.com>") {
			t.Fatalf("the inbox holds %d messages, want ours:\n%s", len(msgs), strings.Join(msgs, "\n---\n"))
		}
	})

	t.Run("mlmmj", func(t *testing.T) {
		receive := servertest.LookPath(t, "mlmmj-receive", "install it with `apt-get install mlmmj` (or run `make test`)")
		relay := liststest.StartMTA(t, false)
		list := liststest.NewMlmmjList(t, "dev@lists.example.org", relay.Addr, "sub1@example.net", "sub2@example.net")
		q := start(t, adapt(t, recipe(t, "mlmmj"),
			"/usr/bin/mlmmj-receive", receive,
			"/var/spool/mlmmj/dev", list))
		id := queue.NewID(time.Now())
		data := post(id, "dev@lists.example.org")
		enqueueData(t, q, id, data, "dev@lists.example.org")
		waitFor(t, "the post archived and sent to the subscribers", func() bool {
			_, err := os.Stat(filepath.Join(list, "archive", "1"))
			return err == nil && relay.Count("sub1@example.net") == 1 && relay.Count("sub2@example.net") == 1
		})
		arch, err := os.ReadFile(filepath.Join(list, "archive", "1"))
		if err != nil || !strings.Contains(string(arch), "Message-ID: <"+id+"@example.com>") {
			t.Fatalf("archive/1 is not our post (%v):\n%s", err, arch)
		}
		// mlmmj does not drop a repeat.
		enqueueData(t, q, queue.NewID(time.Now()), data, "dev@lists.example.org", "copy@archive.example.org")
		waitFor(t, "the repeat archived and sent again", func() bool {
			_, err := os.Stat(filepath.Join(list, "archive", "2"))
			return err == nil && relay.Count("sub1@example.net") == 2 && relay.Count("sub2@example.net") == 2
		})
	})

	t.Run("mailman", func(t *testing.T) {
		if testing.Short() {
			t.Skip("Mailman 3 takes most of a minute to start; run make test")
		}
		relay := liststest.StartMTA(t, false)
		mm := liststest.StartMailman(t, recipe(t, "mailman.cfg"), relay.Addr, map[string][]string{
			"dev@lists.example.org": {"alice@example.com", "sub1@example.net", "sub2@example.net"},
		})
		q := start(t, adapt(t, recipe(t, "mailman"), "127.0.0.1:8024", mm.LMTP))
		id := queue.NewID(time.Now())
		data := post(id, "dev@lists.example.org")
		enqueueData(t, q, id, data, "dev@lists.example.org", "dev-request@lists.example.org", "dev-nosuch@lists.example.org")
		waitFor(t, "delivery", drained(q))
		dl, err := q.DeadLetter(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl.Rejected) != 1 || !strings.Contains(dl.Rejected["dev-nosuch@lists.example.org"], "550") {
			t.Errorf("rejected = %q, want dev-nosuch@ alone, with Mailman's 550", dl.Rejected)
		}
		// dev-request@ went to Mailman's command queue, whose runner
		// the test does not start.
		if n := mm.Queued("command"); n != 1 {
			t.Errorf("Mailman's command queue holds %d messages, want the one to dev-request@", n)
		}
		// Mailman takes the post through its in, pipeline, archive and
		// out runners, each polling its queue.
		waitWithin(t, "the post in the list's archive", time.Minute, func() bool { return len(mm.Archive("dev@lists.example.org")) == 1 })
		arch := mm.Archive("dev@lists.example.org")[0]
		if !strings.Contains(arch, "Message-ID: <"+id+"@example.com>") || !strings.Contains(arch, "List-Id: <dev.lists.example.org>") {
			t.Errorf("the archived post is not ours, or not the list's:\n%s", arch)
		}
		waitWithin(t, "the post sent to the members", time.Minute, func() bool {
			return relay.Count("sub1@example.net") == 1 && relay.Count("sub2@example.net") == 1
		})
		// Mailman does not drop a repeat.
		enqueueData(t, q, queue.NewID(time.Now()), data, "dev@lists.example.org", "copy@archive.example.org")
		waitWithin(t, "the repeat archived and sent again", time.Minute, func() bool {
			return len(mm.Archive("dev@lists.example.org")) == 2 && relay.Count("sub1@example.net") == 2 && relay.Count("sub2@example.net") == 2
		})
	})
}
