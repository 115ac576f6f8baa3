package smtpd_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
	"mxq/internal/smtptest"
	"mxq/queue/queuetest"
)

// A real HAProxy in front of two receivers, with send-proxy-v2: the
// client's own address, not HAProxy's, is what the receivers record.
func TestBehindHAProxy(t *testing.T) {
	bin := servertest.LookPath(t, "haproxy", "apt-get install haproxy (make test installs it)")
	r := queuetest.StartRedis(t)
	proxied := func(c *setup) { c.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }
	mx1 := newEnv(t, r, "mx1.example.org", proxied)
	mx2 := newEnv(t, r, "mx2.example.org", proxied)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	// One thread: roundrobin then alternates exactly between the servers.
	cfg := fmt.Sprintf(`global
    maxconn 100
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind %s
    default_backend mx
backend mx
    balance roundrobin
    server mx1 %s send-proxy-v2
    server mx2 %s send-proxy-v2
`, front, mx1.addr, mx2.addr)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := new(servertest.Log)
	cmd := exec.Command(bin, "-db", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", logs.String())
		}
	})
	waitFor(t, "haproxy to listen", func() bool {
		c, err := net.DialTimeout("tcp", front, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// The client comes from another loopback address than HAProxy's.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.55")}}
	ids := map[string]bool{}
	for i := 0; i < 2; i++ {
		nc, err := d.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{smtptest.New(t, nc), t}
		if g := c.Read(); !strings.HasPrefix(g, "220 mx") {
			t.Fatalf("greeting through haproxy: %q", g)
		}
		c.Expect("EHLO client.example.com", "250")
		got := c.SendMail("a@example.com", []string{listAddr}, message(fmt.Sprint("via haproxy ", i)))
		id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
		if !ok {
			t.Fatalf("through haproxy: %q", got)
		}
		ids[id] = true
		nc.Close()
	}
	recs, err := mx1.q.Peek(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, rec := range recs {
		hosts[rec.Host] = true
		if rec.ClientIP != "127.0.0.55" {
			t.Errorf("%s: client ip %q, want 127.0.0.55", rec.ID, rec.ClientIP)
		}
		if b := mx1.body(rec.ID); !strings.Contains(b, "([127.0.0.55])") {
			t.Errorf("%s: Received lacks the original client:\n%s", rec.ID, b[:min(300, len(b))])
		}
	}
	if len(recs) != 2 || !hosts["mx1.example.org"] || !hosts["mx2.example.org"] {
		t.Errorf("records %+v: want one through each receiver", recs)
	}
}
