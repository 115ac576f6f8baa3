package liststest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NewMlmmjList makes an mlmmj list directory by hand (mlmmj-make-ml is
// interactive) whose mail goes out through relay (host:port), and returns
// it.
func NewMlmmjList(t testing.TB, address, relay string, subscribers ...string) string {
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
