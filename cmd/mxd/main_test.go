package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/certtest"
	"mxq/internal/servertest"
	"mxq/internal/smtptest"
	"mxq/queue/queuetest"
)

// The real binary: STARTTLS, SIGHUP picks up a new certificate for new
// sessions while an older TLS session goes on, SIGTERM exits cleanly.
func TestMxdProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mxd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := queuetest.StartRedis(t)
	mxq := filepath.Join(dir, "mxq")
	if out, err := exec.Command("go", "build", "-o", mxq, "../mxq").CombinedOutput(); err != nil {
		t.Fatalf("go build mxq: %v\n%s", err, out)
	}
	if out, err := exec.Command(mxq, "-redis", r.URL(), "lists", "add", "~*/*@lists.example.org").CombinedOutput(); err != nil {
		t.Fatalf("mxq lists add: %v\n%s", err, out)
	}
	serial1 := writeCert(t, dir)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "mxd.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = "mx1.example.org"
listen = [%q]
domains = ["lists.example.org"]
authserv_id = "lists.example.org"
redis = %q
tls_cert = %q
tls_key = %q
heartbeat_interval = "100ms"
`, addr, r.URL(), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))), 0o644)

	var logs servertest.Log
	cmd := exec.Command(bin, "-config", conf)
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("mxd log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mxd did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}

	old, got := tlsSession(t, addr)
	if got.Cmp(serial1) != 0 {
		t.Fatalf("serial %v, want %v", got, serial1)
	}
	serial2 := writeCert(t, dir)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "reloaded tls certificate") {
		if time.Now().After(deadline) {
			t.Fatal("no reload logged after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, got := tlsSession(t, addr); got.Cmp(serial2) != 0 {
		t.Errorf("after SIGHUP: serial %v, want %v", got, serial2)
	}
	// The session opened before the reload still works.
	old.Send("MAIL FROM:<a@example.com>\r\nRCPT TO:<~a/b@lists.example.org>\r\nDATA\r\n")
	for _, want := range []string{"250", "250", "354"} {
		if got := old.Read(); !strings.HasPrefix(got, want) {
			t.Fatalf("old session after reload: %q, want %s", got, want)
		}
	}
	old.Send("Subject: x\r\n\r\nx\r\n.\r\n")
	if got := old.Read(); !strings.HasPrefix(got, "250 2.0.0 queued as") {
		t.Errorf("old session's message: %q", got)
	}
	old.Conn().Close()

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("mxd after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mxd did not exit after SIGTERM")
	}
}

// tlsSession opens a session, upgrades it, says EHLO again, and returns
// it with the serial of the server's certificate.
func tlsSession(t *testing.T, addr string) (*smtptest.Client, *big.Int) {
	t.Helper()
	c, _ := smtptest.Dial(t, addr)
	c.Expect("EHLO client.example.com", "250")
	st := c.StartTLS(&tls.Config{InsecureSkipVerify: true}, "")
	c.Expect("EHLO client.example.com", "250")
	return c, st.PeerCertificates[0].SerialNumber
}

func writeCert(t *testing.T, dir string) *big.Int {
	t.Helper()
	return certtest.Write(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), "mx1.example.org", certtest.ECDSA(t), time.Hour).SerialNumber
}

// -check-config prints, for each certificate, the SPKI SHA-256 a TLSA
// 3 1 1 record must hold: the hash of the key clients are shown.
func TestCheckConfigPrintsSPKI(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	conf := filepath.Join(dir, "mxd.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = "mx1.example.org"
listen = ["127.0.0.1:2525"]
domains = ["lists.example.org"]
authserv_id = "lists.example.org"
tls_cert = %q
tls_key = %q
`, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))), 0o644)
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"-config", conf, "-check-config"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	want := "ecdsa key, spki_sha256 " + hex.EncodeToString(sum[:])
	if !strings.Contains(stdout.String(), want) || !strings.HasSuffix(stdout.String(), conf+": ok\n") {
		t.Errorf("-check-config printed\n%s\nwant a line with %q and then ok", stdout.String(), want)
	}
}
