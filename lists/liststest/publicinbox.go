package liststest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mxq/internal/servertest"
)

// PublicInbox is a public-inbox v2 inbox made by a test, with its config
// and the home that public-inbox-mda wants (its emergency Maildir) in a
// directory of the test's.
type PublicInbox struct {
	// Config is the config file, for PI_CONFIG; Home is for HOME; Dir is
	// the inbox.
	Config, Home, Dir string
	// MDA is public-inbox-mda's path.
	MDA string
	t   testing.TB
}

const publicInboxInstall = "install it with `apt-get install public-inbox` (or run `make test`)"

// NewPublicInbox makes a v2 inbox called name for address with
// public-inbox-init. Spam checking is turned off: public-inbox-mda's
// default runs spamc, which is not installed.
func NewPublicInbox(t testing.TB, name, address string) *PublicInbox {
	t.Helper()
	initBin := servertest.LookPath(t, "public-inbox-init", publicInboxInstall)
	dir := t.TempDir()
	p := &PublicInbox{
		Config: filepath.Join(dir, "config"), Home: filepath.Join(dir, "home"), Dir: filepath.Join(dir, "inbox"),
		MDA: servertest.LookPath(t, "public-inbox-mda", publicInboxInstall), t: t,
	}
	if err := os.Mkdir(p.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(initBin, "-V2", name, p.Dir, "http://example.org/"+name, address)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + p.Home, "PI_CONFIG=" + p.Config}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("public-inbox-init: %v\n%s", err, out)
	}
	f, err := os.OpenFile(p.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("[publicinboxmda]\n\tspamcheck = none\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Messages returns the messages in the inbox's first epoch, newest
// first, read with git: each commit public-inbox-mda makes holds one
// message, in the blob "m".
func (p *PublicInbox) Messages() []string {
	p.t.Helper()
	gitDir := filepath.Join(p.Dir, "git", "0.git")
	out, err := exec.Command("git", "--git-dir", gitDir, "rev-list", "--all").Output()
	if err != nil {
		p.t.Fatalf("git rev-list in %s: %v", gitDir, err)
	}
	var msgs []string
	for _, c := range strings.Fields(string(out)) {
		m, err := exec.Command("git", "--git-dir", gitDir, "show", c+":m").Output()
		if err != nil {
			p.t.Fatalf("git show %s:m: %v", c, err)
		}
		msgs = append(msgs, string(m))
	}
	return msgs
}

// Emergency returns the messages in public-inbox-mda's emergency Maildir
// under Home: what it read and did not file.
func (p *PublicInbox) Emergency() []string {
	p.t.Helper()
	return maildirMessages(p.t, filepath.Join(p.Home, ".public-inbox", "emergency"))
}

// maildirMessages returns the text of each message in the Maildir dir's
// new/, none when it does not exist yet.
func maildirMessages(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, string(b))
	}
	return msgs
}
