package lists_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

func TestMlmmjThroughExec(t *testing.T) {
	bin := servertest.LookPath(t, "mlmmj-receive", "install it with `apt-get install mlmmj` (or run `make test`)")
	relay := liststest.StartMTA(t, false)
	list := liststest.NewMlmmjList(t, "dev@lists.example.org", relay.Addr, "sub1@example.net", "sub2@example.net")
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{
		{Match: "dev@lists.example.org", To: &lists.Exec{Argv: []string{bin, "-F", "-L", list}}},
		{Match: "*@archive.example.org", To: &lists.Maildir{Dir: t.TempDir()}},
	}}
	e.run(t, fastRetries, r)
	id := queue.NewID(time.Now())
	data := "From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: test " + id + "\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nHello.\r\n"
	e.putData(t, id, "alice@example.com", data, "dev@lists.example.org")
	waitFor(t, "delivery", e.drained(t))

	// mlmmj archives the post as message 1 and sends it on through the
	// relay to each subscriber.
	waitFor(t, "mlmmj's archive", func() bool {
		_, err := os.Stat(filepath.Join(list, "archive", "1"))
		return err == nil
	})
	arch, err := os.ReadFile(filepath.Join(list, "archive", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(arch), "Message-ID: <"+id+"@example.com>") {
		t.Errorf("archive/1 is not our message:\n%s", arch)
	}
	waitFor(t, "distribution to subscribers", func() bool {
		return relay.Count("sub1@example.net") == 1 && relay.Count("sub2@example.net") == 1
	})
	if _, err := os.Stat(filepath.Join(list, "archive", strconv.Itoa(2))); err == nil {
		t.Error("mlmmj archived a second message: delivered twice")
	}

	// The same bytes to the same list again, as a redelivery brings them:
	// mlmmj does not drop repeats, it archives and sends the post again
	// (docs/listd.md).
	e.putData(t, queue.NewID(time.Now()), "alice@example.com", data, "dev@lists.example.org", "copy@archive.example.org")
	waitFor(t, "the repeat", e.drained(t))
	waitFor(t, "the repeat archived and sent again", func() bool {
		_, err := os.Stat(filepath.Join(list, "archive", "2"))
		return err == nil && relay.Count("sub1@example.net") == 2 && relay.Count("sub2@example.net") == 2
	})
}
