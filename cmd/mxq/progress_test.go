package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	p := &progress{w: &out, name: "dead retry", total: 1000, now: func() time.Time { return clock }}
	for i := 1; i <= 1000; i++ {
		clock = clock.Add(time.Millisecond)
		p.step(i, i/100)
	}
	p.end()
	lines := strings.Split(out.String(), "\r")[1:]
	// Every 200 ms of the one second, and the last.
	if len(lines) < 5 || len(lines) > 7 {
		t.Errorf("%d updates in 1 s, want one per %v and the last: %q", len(lines), progressEvery, out.String())
	}
	if last := lines[len(lines)-1]; last != "dead retry: 1000 of 1000 (100%), 10 failed\n" {
		t.Errorf("last update %q", last)
	}
}

// Not on a terminal, or with -json, progress writes nothing: scripts see
// only the result.
func TestProgressQuiet(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "dead retry", 10, false)
	for i := 1; i <= 10; i++ {
		p.step(i, 0)
	}
	p.end()
	if out.Len() != 0 {
		t.Errorf("progress to a buffer: %q, want nothing", out.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file counts as a terminal")
	}
	tty, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if !isTerminal(tty) {
		t.Error("a character device does not count as a terminal")
	}
	if p := newProgress(tty, "x", 1, true); p.w != nil {
		t.Error("-json still reports progress")
	}
}
