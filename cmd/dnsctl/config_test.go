package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/cmd/internal/tomlfile"
)

// The annotated example shows every setting, and the defaults it shows
// are the code's (the rules are tomlfile.CheckExample's).
func TestExampleConfig(t *testing.T) {
	for _, p := range tomlfile.CheckExample("../../docs/examples/dnsctl.toml", func() []tomlfile.Setting { return defaults().fileSettings() }) {
		t.Error(p)
	}
}

// Keys the file leaves out keep the defaults, flags override the file.
func TestFlagsOverrideFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dnsctl.toml")
	os.WriteFile(path, []byte("zone = \"example.org\"\nkey = \"/etc/k\"\nmargin = \"7s\"\nsmtp_port = 2525\nauthoritative = [\"192.0.2.1:53\"]\nns = false\n"), 0o600)
	fs := flag.NewFlagSet("dnsctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := newFlags(fs)
	if err := fs.Parse([]string{"-config", path, "-margin", "9s", "-authoritative", "192.0.2.2:53", "-state", "/tmp/s.json"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Zone, want.Key, want.NS = "example.org", "/etc/k", false
	want.Maint.Margin, want.Maint.SMTPPort, want.Maint.StateFile = 9*time.Second, 2525, "/tmp/s.json"
	want.Authoritative = []string{"192.0.2.2:53"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved settings (-want +got):\n%s", diff)
	}
}
