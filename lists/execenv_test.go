package lists_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/lists"
	"mxq/queue"
)

// A route's Env reaches the program; its PATH replaces the default; the
// envelope's variables stay listd's even when Env names them.
func TestExecEnv(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "deliver")
	src := "#!/bin/sh\nexec /usr/bin/env > " + dir + "/env\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.Exec{
		Argv: []string{script},
		Env: []string{"PI_CONFIG=/srv/public-inbox/config", "HOME=/var/lib/public-inbox", "PATH=/opt/pi/bin:/usr/bin:/bin",
			"ORIGINAL_RECIPIENT=forged@lists.example.org", "SENDER=forged@example.com", "EMPTY="},
	}}}}
	e.run(t, fastRetries, r)
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "alice@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}}}
	if _, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Data: []byte("Subject: x\r\n\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", e.drained(t))
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "PWD=") { // the shell's own
			got = append(got, l)
		}
	}
	sort.Strings(got)
	want := []string{
		"EMPTY=",
		"HOME=/var/lib/public-inbox",
		"ORIGINAL_RECIPIENT=dev@lists.example.org",
		"PATH=/opt/pi/bin:/usr/bin:/bin",
		"PI_CONFIG=/srv/public-inbox/config",
		"QUEUE_ID=" + rec.ID,
		"RECIPIENT=dev@lists.example.org",
		"SENDER=alice@example.com",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the program's environment (-want +got):\n%s", diff)
	}
}

func TestCheckEnv(t *testing.T) {
	tests := []struct {
		env  []string
		want string // "" for valid
	}{
		{[]string{"PI_CONFIG=/srv/public-inbox/config", "HOME=/var/lib/public-inbox", "PATH=/opt/bin:/usr/bin:/bin", "EMPTY=", "X=a=b"}, ""},
		{[]string{"PI_CONFIG"}, `"PI_CONFIG": want NAME=value`},
		{[]string{"=x"}, `"=x": want NAME=value`},
		{[]string{"1X=x"}, `want NAME=value`},
		{[]string{"A-B=x"}, `want NAME=value`},
		{[]string{"A B=x"}, `want NAME=value`},
		{[]string{"A=x\ny"}, `A: the value has a NUL, CR or LF`},
		{[]string{"A=x\x00y"}, `A: the value has a NUL, CR or LF`},
		{[]string{"A=x\ry"}, `A: the value has a NUL, CR or LF`},
		{[]string{"ORIGINAL_RECIPIENT=a@b.example"}, `ORIGINAL_RECIPIENT: listd sets SENDER, RECIPIENT, ORIGINAL_RECIPIENT, QUEUE_ID from each message's envelope`},
		{[]string{"SENDER=a@b.example"}, `SENDER: listd sets`},
		{[]string{"RECIPIENT=a@b.example"}, `RECIPIENT: listd sets`},
		{[]string{"QUEUE_ID=1"}, `QUEUE_ID: listd sets`},
		{[]string{"HOME=/a", "HOME=/b"}, `HOME: set twice`},
	}
	for _, tt := range tests {
		err := lists.CheckEnv(tt.env)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckEnv(%q) = %v, want nil", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckEnv(%q) = %v, want an error containing %q", tt.env, err, tt.want)
		}
	}
}
