package postfix

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mxq/internal/servertest"
)

// Postfix itself reads the instance: its main.cf places it in the
// directory, with the caller's lines after, and its master.cf has smtpd
// on the address given. postconf warns about any line it does not know.
func TestWrite(t *testing.T) {
	postconf := servertest.LookPath(t, "postconf", "apt-get install postfix")
	dir := t.TempDir()
	etc, err := Write(dir, "127.0.0.1:2525", "myhostname = test.invalid\ninet_interfaces = 127.0.0.1\n")
	if err != nil {
		t.Fatal(err)
	}
	if etc != filepath.Join(dir, "etc") {
		t.Errorf("etc = %s, want %s/etc", etc, dir)
	}
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(postconf, append([]string{"-c", etc}, args...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("postconf %q: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	main := run("-n")
	for _, want := range []string{"queue_directory = " + dir + "/queue", "maillog_file = " + dir + "/maillog", "myhostname = test.invalid"} {
		if !strings.Contains(main, want+"\n") {
			t.Errorf("main.cf lacks %q:\n%s", want, main)
		}
	}
	master := run("-M")
	if f := strings.Fields(master); len(f) < 8 || f[0] != "127.0.0.1:2525" || f[1] != "inet" || f[4] != "n" || f[7] != "smtpd" {
		t.Errorf("master.cf does not start with an unchrooted smtpd on 127.0.0.1:2525:\n%s", master)
	}
}
