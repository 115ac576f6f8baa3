package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/dnsctl"
	"mxq/dnsctl/dnstest"
	"mxq/internal/certtest"
	"mxq/internal/servertest"
	"mxq/queue/queuetest"
)

// writeECDSACert writes a new key and a self-signed certificate for mx1
// to dir/cert.pem and dir/key.pem.
func writeECDSACert(t *testing.T, dir string) {
	t.Helper()
	certtest.Write(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), "mx1.example.org", certtest.ECDSA(t), time.Hour)
}

// tlsaLab is the real mxd on mx1 (127.0.0.11) with a certificate in
// live, against a signed BIND primary with two secondaries.
type tlsaLab struct {
	t          *testing.T
	dir        string
	live, next string // the certificate mxd loads, and the one to come
	first      string // the SPKI SHA-256 of live's, as mxd -check-config printed it
	mxd        *exec.Cmd
	common     []string // flags of every dnsctl tlsa run
}

func newTLSALab(t *testing.T) *tlsaLab {
	dir := t.TempDir()
	mxd := filepath.Join(dir, "mxd")
	if out, err := exec.Command("go", "build", "-o", mxd, "../mxd").CombinedOutput(); err != nil {
		t.Fatalf("go build mxd: %v\n%s", err, out)
	}
	dns := dnstest.StartBINDSigned(t)
	r := queuetest.StartRedis(t)
	l, err := net.Listen("tcp", "127.0.0.11:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	live, next := filepath.Join(dir, "live"), filepath.Join(dir, "next")
	os.Mkdir(live, 0o700)
	os.Mkdir(next, 0o700)
	writeECDSACert(t, live)
	conf := filepath.Join(dir, "mxd.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mx1.example.org\"\nlisten = [%q]\ndomains = [\"lists.example.org\"]\n"+
		"authserv_id = \"lists.example.org\"\nredis = %q\ntls_cert = %q\ntls_key = %q\n",
		addr, r.URL(), filepath.Join(live, "cert.pem"), filepath.Join(live, "key.pem"))), 0o644)

	hash := regexp.MustCompile(`spki_sha256 ([0-9a-f]{64})`)
	out, err := exec.Command(mxd, "-config", conf, "-check-config").Output()
	m := hash.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("mxd -check-config: %v\n%s", err, out)
	}

	var logs servertest.Log
	cmd := exec.Command(mxd, "-config", conf)
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mxd log:\n%s", logs.String())
		}
	})

	common := []string{"-zone", "example.org", "-key", dns.Key.File, "-server", dns.Primary.Addr, "-ns=false",
		"-smtp-port", strconv.Itoa(port), "-margin", "0s", "-tlsa-ttl", "2s"}
	for _, a := range dns.Addrs() {
		common = append(common, "-authoritative", a)
	}
	return &tlsaLab{t: t, dir: dir, live: live, next: next, first: string(m[1]), mxd: cmd, common: common}
}

// tlsa runs dnsctl tlsa SUB in this process.
func (l *tlsaLab) tlsa(sub string, args ...string) (int, string, string) {
	return runCmd(append(append([]string{"tlsa", sub}, l.common...), args...)...)
}

// status is dnsctl tlsa status -json mx1.example.org.
func (l *tlsaLab) status() (int, dnsctl.TLSAStatus) {
	l.t.Helper()
	rc, stdout, stderr := l.tlsa("status", "-json", "mx1.example.org")
	var st dnsctl.TLSAStatus
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		l.t.Fatalf("status: exit %d, %v\n%s\n%s", rc, err, stdout, stderr)
	}
	return rc, st
}

// TestTLSACommand runs the real mxd on mx1 (127.0.0.11) against a signed
// BIND primary with two secondaries: the hash mxd -check-config prints is
// the one dnsctl tlsa status sees served; status fails (exit 6) until the
// key is published; after a new key is published, mxd reloads it on
// SIGHUP, and retire removes the old key's record.
func TestTLSACommand(t *testing.T) {
	l := newTLSALab(t)
	live, next, first, cmd, tlsa, status := l.live, l.next, l.first, l.mxd, l.tlsa, l.status
	dir, common := l.dir, l.common
	deadline := time.Now().Add(10 * time.Second)
	rc, st := status()
	for ; len(st.Keys) == 0 && time.Now().Before(deadline); rc, st = status() {
		time.Sleep(50 * time.Millisecond) // mxd is starting
	}
	if rc != exitNotOK || len(st.Keys) != 1 || st.Keys[0].SPKISHA256 != first || len(st.Keys[0].Records) != 0 {
		t.Fatalf("status before publish: exit %d, %+v; want exit %d and key %s without a record", rc, st, exitNotOK, first)
	}

	rc, stdout, stderr := tlsa("publish", "-cert", filepath.Join(live, "cert.pem"), "mx1.example.org")
	if rc != exitOK || !strings.Contains(stdout, "3 1 1 "+first) || !strings.Contains(stdout, "may switch") {
		t.Fatalf("publish: exit %d\n%s\n%s", rc, stdout, stderr)
	}
	if rc, st = status(); rc != exitOK || !st.OK {
		t.Fatalf("status after publish: exit %d, %+v", rc, st)
	}

	writeECDSACert(t, next)
	if rc, stdout, stderr = tlsa("publish", "-cert", filepath.Join(next, "cert.pem"), "mx1.example.org"); rc != exitOK {
		t.Fatalf("publish of the next key: exit %d\n%s\n%s", rc, stdout, stderr)
	}
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.Rename(filepath.Join(next, f), filepath.Join(live, f)); err != nil {
			t.Fatal(err)
		}
	}
	cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for rc, st = status(); len(st.Unused) == 0 && time.Now().Before(deadline); rc, st = status() {
		time.Sleep(50 * time.Millisecond) // the reload is on its way
	}
	if rc != exitOK || len(st.Unused) != 1 || st.Unused[0].Data != first {
		t.Fatalf("status after the reload: exit %d, %+v; want the first key's record unused", rc, st)
	}
	rc, stdout, stderr = tlsa("retire", "mx1.example.org")
	if rc != exitOK || !strings.Contains(stdout, "removed 2 TLSA 3 1 1 "+first) {
		t.Fatalf("retire: exit %d\n%s\n%s", rc, stdout, stderr)
	}
	if rc, st = status(); rc != exitOK || len(st.Published) != 1 || st.Published[0].Data == first {
		t.Fatalf("status after retire: exit %d, %+v", rc, st)
	}

	// The same in one command: the hook installs the files and sends SIGHUP.
	writeECDSACert(t, next)
	hook := fmt.Sprintf("mv %s/cert.pem %s/key.pem %s/ && kill -HUP %d", next, next, live, cmd.Process.Pid)
	rc, stdout, stderr = runCmd(append(append([]string{"tlsa", "rollover"}, common...), "-state", filepath.Join(dir, "state", "dnsctl.json"),
		"-cert", filepath.Join(next, "cert.pem"), "mx1.example.org", "--", "sh", "-c", hook)...)
	if rc != exitOK || !strings.Contains(stdout, "rolled over") {
		t.Fatalf("rollover: exit %d\n%s\n%s", rc, stdout, stderr)
	}
	if rc, st = status(); rc != exitOK || len(st.Published) != 1 || len(st.Keys) != 1 || !st.Keys[0].Records.Equal(st.Published) {
		t.Fatalf("status after rollover: exit %d, %+v", rc, st)
	}

	// Without HOST, status takes every MX host of the zone: mx1 is ok,
	// mx2 and mx3 (nothing listens there) are not, and the exit says so.
	rc, stdout, stderr = tlsa("status", "-json")
	var sts []dnsctl.TLSAStatus
	if err := json.Unmarshal([]byte(stdout), &sts); err != nil || rc != exitNotOK || len(sts) != 3 {
		t.Fatalf("status of every MX host: exit %d, %v\n%s\n%s", rc, err, stdout, stderr)
	}
	for _, st := range sts {
		if mx1 := dnsctl.SameName(st.Host, "mx1.example.org"); st.OK != mx1 || mx1 && len(st.Keys) != 1 || !mx1 && (len(st.Addrs) != 1 || st.Addrs[0].Err == "") {
			t.Errorf("status of every MX host: %s ok %v, keys %d, addrs %+v; want only mx1 ok, with one key", st.Host, st.OK, len(st.Keys), st.Addrs)
		}
	}

	// Without HOST, retire takes every MX host of the zone in turn. mx2
	// and mx3 serve nothing here: each is refused on its own, and mx1,
	// whose records all match, is still done.
	rc, stdout, stderr = tlsa("retire", "-json")
	var all []struct {
		Host    string
		Removed dnsctl.TLSASet
		Error   string
		Exit    int
	}
	if err := json.Unmarshal([]byte(stdout), &all); err != nil || rc != exitRefused || len(all) != 3 {
		t.Fatalf("retire of every MX host: exit %d, %v\n%s\n%s", rc, err, stdout, stderr)
	}
	for _, r := range all {
		switch {
		case dnsctl.SameName(r.Host, "mx1.example.org"):
			if r.Exit != exitOK || r.Error != "" || len(r.Removed) != 0 {
				t.Errorf("retire of every MX host: %+v; want mx1 done, nothing removed", r)
			}
		case r.Exit != exitRefused || !strings.Contains(r.Error, "could not be asked"):
			t.Errorf("retire of every MX host: %+v; want %s refused, its address not answering", r, r.Host)
		}
	}
}

// TestTLSARolloverKilled runs the real dnsctl tlsa rollover against the
// real mxd and SIGKILLs it as soon as it reports a step: just before its
// UPDATE (which then lands whole or not at all), during the wait for the
// TTL (the records are published, the phase not yet saved), and once the
// reload hook has run. Every kill leaves the TLSA RRset the old one or the
// old one with the new record, on every server; the same command run
// again finishes the rollover, and runs the hook once in all: not before
// the TTL has passed, not again once its phase is saved.
func TestTLSARolloverKilled(t *testing.T) {
	l := newTLSALab(t)
	bin := buildDnsctl(t, l.dir)
	state := filepath.Join(l.dir, "state", "dnsctl.json")
	hooks := filepath.Join(l.dir, "hooks")
	// The hook may run twice: it copies, it does not move.
	hook := fmt.Sprintf("cp %s/cert.pem %s/key.pem %s/ && echo ran >> %s && kill -HUP %d", l.next, l.next, l.live, hooks, l.mxd.Process.Pid)
	rollover := func(kill func(dnsctl.Event) bool) (killed bool, exit int, stdout string) {
		t.Helper()
		argv := append(append([]string{"tlsa", "rollover"}, l.common...), "-json", "-state", state,
			"-cert", filepath.Join(l.next, "cert.pem"), "mx1.example.org", "--", "sh", "-c", hook)
		cmd := exec.Command(bin, argv...)
		var out strings.Builder
		cmd.Stdout = &out
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		defer timer.Stop()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("rollover: %s", sc.Text())
			var ev dnsctl.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && !killed && kill != nil && kill(ev) {
				killed = true
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		return killed && ws.Signaled(), cmd.ProcessState.ExitCode(), out.String()
	}
	hookRuns := func() int {
		b, _ := os.ReadFile(hooks)
		return strings.Count(string(b), "ran")
	}

	current := l.first
	_, stdout, stderr := l.tlsa("publish", "-cert", filepath.Join(l.live, "cert.pem"), "mx1.example.org")
	if _, st := l.status(); !st.OK {
		t.Fatalf("publish of the first key: %+v\n%s\n%s", st, stdout, stderr)
	}
	for _, tc := range []struct {
		name  string
		phase dnsctl.Phase
		msg   string
	}{
		{"before the UPDATE", "publish", "adding"},
		{"waiting for the TTL", "ttl", "every server shows"},
		{"after the hook", "check", ""},
	} {
		os.Remove(hooks)
		writeECDSACert(t, l.next)
		certs, err := dnsctl.LoadCerts(filepath.Join(l.next, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		fresh := dnsctl.SPKISHA256(certs[0])
		killed, exit, out := rollover(func(ev dnsctl.Event) bool {
			return ev.Phase == tc.phase && strings.HasPrefix(ev.Msg, tc.msg)
		})
		if !killed {
			t.Fatalf("%s: not killed (exit %d)\n%s", tc.name, exit, out)
		}
		// Whole or not at all, on every server alike once they agree.
		old, both := dnsctl.NewTLSASet(dnsctl.EE311(current, 2)), dnsctl.NewTLSASet(dnsctl.EE311(current, 2), dnsctl.EE311(fresh, 2))
		var st dnsctl.TLSAStatus
		deadline := time.Now().Add(10 * time.Second)
		for _, st = l.status(); !st.Agree && time.Now().Before(deadline); _, st = l.status() {
			time.Sleep(50 * time.Millisecond) // the secondaries transfer the zone
		}
		if !st.Agree || !st.Published.Equal(old) && !st.Published.Equal(both) {
			t.Fatalf("%s: killed, the servers show %+v (agree %v); want %s or %s", tc.name, st.Servers, st.Agree, old, both)
		}
		t.Logf("%s: killed with %s published", tc.name, st.Published)

		killed, exit, out = rollover(nil)
		var rep dnsctl.RolloverReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || exit != exitOK {
			t.Fatalf("%s: the rollover again: exit %d, %v\n%s", tc.name, exit, err, out)
		}
		if tc.phase == "check" && rep.Resumed == "" {
			t.Errorf("%s: the rollover again started over; want it to continue after the saved phase", tc.name)
		}
		if n := hookRuns(); n != 1 {
			t.Errorf("%s: the hook ran %d times; want once", tc.name, n)
		}
		rc, st := l.status()
		if want := dnsctl.NewTLSASet(dnsctl.EE311(fresh, 2)); rc != exitOK || !st.Published.Equal(want) {
			t.Errorf("%s: after the rollover: exit %d, published %s; want %s", tc.name, rc, st.Published, want)
		}
		if _, err := os.Stat(filepath.Join(l.dir, "state", "tlsa-mx1.example.org.json")); !os.IsNotExist(err) {
			t.Errorf("%s: the rollover's state after it finished: %v; want none", tc.name, err)
		}
		current = fresh
	}
}
