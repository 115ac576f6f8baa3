// Package servertest is what the test helpers that run real servers on
// loopback (redis-server in queuetest, named and knotd in dnstest and in
// msgauth's tests, listd and mxd in their command tests) have in common:
// finding the server's binary, a port to give it, a file to configure it,
// and a buffer for its log that the test may read while the server
// writes.
//
// A server such as redis-server or named cannot be handed an open
// listener, so FreePort returns a port that was free a moment ago; the
// helpers start again on new ports when a server reports it in use.
package servertest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// LookPath finds the server binary name in PATH or in the sbin and bin
// directories that root's PATH has and a test's may lack. When it is not
// there, the test fails with install, the command that installs it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: %s", name, install)
	return ""
}

// FreePort returns a port that was free on 127.0.0.1 for both TCP and UDP
// a moment ago, and that it has not returned before in this process: a
// test that picks several ports before its servers bind them (secondaries
// before the primary) must not be handed the same one twice, which the
// kernel may do for ports closed a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			if handOut(port) {
				return port
			}
		}
	}
	t.Fatal("no free port on 127.0.0.1 for both UDP and TCP")
	return 0
}

// WriteFile writes text to dir/name, readable by its owner only, and
// returns the path.
func WriteFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Log is a buffer that a server's output goroutine writes while the test
// reads it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	portsMu   sync.Mutex
	portsSeen = map[int]bool{}
)

// handOut records port as handed out; false if it was before.
func handOut(port int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsSeen[port] {
		return false
	}
	portsSeen[port] = true
	return true
}
