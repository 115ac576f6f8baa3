package lists_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mxq/internal/servertest"
	"mxq/lists"
	"mxq/lists/liststest"
)

// newMlmmjList makes an mlmmj list directory by hand (mlmmj-make-ml is
// interactive) whose mail goes out through relay (host:port).
func newMlmmjList(t *testing.T, address, relay string, subscribers ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "list")
	for _, d := range []string{"incoming", "queue/discarded", "archive", "text", "subconf", "unsubconf",
		"bounce", "control", "moderation", "subscribers.d", "digesters.d", "nomailsubs.d", "requeue"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(relay, ":")
	files := map[string]string{
		"control/listaddress": address,
		"control/relayhost":   host,
		"control/smtpport":    port,
	}
	for _, s := range subscribers {
		f := "subscribers.d/" + s[:1]
		files[f] += s + "\n"
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMlmmjThroughExec(t *testing.T) {
	bin := servertest.LookPath(t, "mlmmj-receive", "install it with `apt-get install mlmmj` (or run `make test`)")
	relay := liststest.StartMTA(t, false)
	list := newMlmmjList(t, "dev@lists.example.org", relay.Addr, "sub1@example.net", "sub2@example.net")
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{
		{Match: "dev@lists.example.org", To: &lists.Exec{Argv: []string{bin, "-F", "-L", list}}},
	}}
	e.run(t, fastRetries, r)
	id := e.put(t, "alice@example.com", "dev@lists.example.org")
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
}
