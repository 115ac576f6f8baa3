package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/queue"
	"mxq/queue/queuetest"
)

func runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	rc := run(context.Background(), args, &stdout, &stderr)
	return rc, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("zone = \"example.org\"\n\nkey = \"k\"\nttl_margin = \"3s\"\n"), 0o600)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-h"}, exitOK, "Exit codes: 0 success, 1 error, 2 usage, 3 refused"},
		{"no arguments", nil, exitUsage, "Usage:"},
		{"unknown key", []string{"status", "-config", bad}, exitUsage, bad + `:4: unknown key "ttl_margin"`},
		{"no zone", []string{"status", "-key", "k"}, exitUsage, "-zone (or zone in the config file) is required"},
		{"minimum 0", []string{"drain", "-zone", "example.org", "-key", "k", "-min-remaining", "0", "mx2"}, exitUsage, "at least 1 MX record must remain"},
		{"missing key file", []string{"status", "-zone", "example.org", "-key", filepath.Join(dir, "nokey"), "-server", "127.0.0.1:1"}, exitError, "nokey"},
		{"unknown flag", []string{"drain", "-colour"}, exitUsage, "flag provided but not defined: -colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, _, stderr := runCmd(tc.args...)
			if rc != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", rc, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// TestDrainRestoreCommand runs the command against a BIND primary with two
// secondaries, a real Redis, and three hosts that beat and greet like mxd.
func TestDrainRestoreCommand(t *testing.T) {
	dns := dnstest.StartBIND(t)
	r := queuetest.StartRedis(t)
	port := fakeHosts(t, r.URL())
	common := []string{"-zone", "example.org", "-key", dns.Key.File, "-server", dns.Primary.Addr, "-ns=false",
		"-redis", r.URL(), "-smtp-port", strconv.Itoa(port), "-state", filepath.Join(t.TempDir(), "state.json"),
		"-margin", "100ms"}
	for _, a := range dns.Addrs() {
		common = append(common, "-authoritative", a)
	}
	cmd := func(sub string, args ...string) (int, string, string) {
		return runCmd(append(append([]string{sub}, common...), args...)...)
	}

	rc, stdout, stderr := cmd("drain", "-json", "mx2.example.org")
	var rep dnsctl.Report
	if err := json.Unmarshal([]byte(stdout), &rep); rc != exitOK || err != nil || !rep.Safe {
		t.Fatalf("drain: exit %d, %v, stdout %s\nstderr:\n%s", rc, err, stdout, stderr)
	}
	for _, s := range rep.Steps {
		t.Logf("drain phase %-11s %s", s.Phase, s.End.Sub(s.Start).Round(time.Millisecond))
	}
	rc, stdout, _ = cmd("status")
	if rc != exitOK || !strings.Contains(stdout, "maintenance: mx2.example.org. at phase drained") {
		t.Errorf("status: exit %d\n%s", rc, stdout)
	}
	if rc, _, stderr := cmd("drain", "mx3.example.org"); rc != exitRefused || !strings.Contains(stderr, "mx2.example.org. is in maintenance") {
		t.Errorf("second host: exit %d, %s; want refused", rc, stderr)
	}
	if rc, stdout, stderr := cmd("restore", "mx2.example.org"); rc != exitOK {
		t.Fatalf("restore: exit %d\n%s\n%s", rc, stdout, stderr)
	}
	rc, _, stderr = cmd("maintain", "mx1.example.org", "--", "sh", "-c", "echo upgrading; exit 7")
	if rc != exitCommand || !strings.Contains(stderr, "upgrading") || !strings.Contains(stderr, "restored: mx1.example.org.") {
		t.Errorf("maintain with a failing command: exit %d\n%s", rc, stderr)
	}
	rc, stdout, _ = cmd("status", "-json")
	var st dnsctl.Status
	if err := json.Unmarshal([]byte(stdout), &st); rc != exitOK || err != nil || !st.Agree || st.Maintenance != nil || len(st.Views[0].MX) != 3 {
		t.Errorf("final status: exit %d, %v\n%s", rc, err, stdout)
	}
}

// fakeHosts runs mx1-3 on 127.0.0.11-13 (their A records in the test
// zone) on one port: a 220 greeting and a heartbeat that reports the drain
// flag read in the beat before, as mxd does.
func fakeHosts(t *testing.T, url string) int {
	t.Helper()
	q, err := queue.Open(url, queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	var port int
	var ls []net.Listener
	for try := 0; len(ls) < 3 && try < 20; try++ {
		for _, l := range ls {
			l.Close()
		}
		ls, port = nil, 0
		for i := 11; i <= 13; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
			if err != nil {
				break
			}
			port = l.Addr().(*net.TCPAddr).Port
			ls = append(ls, l)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, l := range ls {
		host := fmt.Sprintf("mx%d.example.org", i+1)
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "220 %s fake\r\n", host)
				c.Close()
			}
		}()
		go func() {
			draining := false
			for ctx.Err() == nil {
				d, err := q.Beat(ctx, queue.Heartbeat{Host: host, Draining: draining, Version: "fake"}, time.Second)
				if err == nil {
					draining = d
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	// The hosts are up once each has beaten: dnsctl refuses to drain
	// while another host has no heartbeat.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, _ := q.Hosts(context.Background())
		alive := 0
		for _, h := range hs {
			if h.Alive {
				alive++
			}
		}
		if alive == len(ls) {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake hosts: %d of %d beat within 10s", alive, len(ls))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
