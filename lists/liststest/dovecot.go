package liststest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
)

// Dovecot is a Dovecot LMTP server run by a test, delivering into
// Maildirs in its own directory.
type Dovecot struct {
	t    testing.TB
	dir  string
	conf string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

// Socket is the LMTP unix socket, as an lmtp destination address.
func (d *Dovecot) Socket() string { return "unix:" + filepath.Join(d.dir, "run", "lmtp") }

// StartDovecot starts `dovecot -F` with an LMTP unix listener and a
// passwd-file userdb holding users. Run by root, Dovecot's own processes
// run as root and mail is stored as the user nobody; run by anyone else,
// all of it runs as that user.
func StartDovecot(t testing.TB, users ...string) *Dovecot {
	t.Helper()
	bin := servertest.LookPath(t, "dovecot", "install it with `apt-get install dovecot-core dovecot-lmtpd` (or run `make test`)")
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		t.Fatal("dovecot's lmtp is missing: install it with `apt-get install dovecot-lmtpd`")
	}
	runAs, groupAs, mailUser := "root", "root", "nobody"
	if os.Geteuid() != 0 {
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		g, err := user.LookupGroupId(me.Gid)
		if err != nil {
			t.Fatal(err)
		}
		runAs, groupAs, mailUser = me.Username, g.Name, me.Username
	}
	mailer, err := user.Lookup(mailUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(mailer.Uid)
	gid, _ := strconv.Atoi(mailer.Gid)
	dir := t.TempDir()
	// The mail processes run as nobody and must reach the Maildirs.
	openPath(dir)
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	var pw strings.Builder
	for _, u := range users {
		fmt.Fprintf(&pw, "%s:::::\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = mxqtest-%[4]d
log_path = %[1]s/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = %[5]s
default_internal_group = %[6]s
default_login_user = %[5]s
mail_location = maildir:%[1]s/mail/%%n
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
  default_fields = uid=%[2]d gid=%[3]d home=%[1]s/mail/%%n
}
service lmtp {
  user = %[5]s
  unix_listener lmtp {
    mode = 0666
  }
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
`, dir, uid, gid, time.Now().UnixNano(), runAs, groupAs)
	d := &Dovecot{t: t, dir: dir, conf: filepath.Join(dir, "dovecot.conf")}
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\n%s", d.out.String(), log)
		}
	})
	// Ready once the LMTP socket answers with its greeting.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("unix", filepath.Join(dir, "run", "lmtp"), time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 4)
			_, err = c.Read(b)
			c.Close()
			if err == nil && string(b[:3]) == "220" {
				return d
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot exited at start:\n%s\n%s", d.out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot's LMTP socket did not answer within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Doveadm runs doveadm against this instance.
func (d *Dovecot) Doveadm(args ...string) (string, error) {
	out, err := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...).CombinedOutput()
	return string(out), err
}

// MessageIDs returns the Message-ID of every message in user's INBOX, as
// doveadm reports them.
func (d *Dovecot) MessageIDs(user string) []string {
	d.t.Helper()
	out, err := d.Doveadm("fetch", "-u", user, "hdr.message-id", "mailbox", "INBOX")
	if err != nil {
		d.t.Fatalf("doveadm fetch: %v\n%s", err, out)
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "hdr.message-id: "); ok {
			ids = append(ids, strings.TrimSpace(v))
		}
	}
	return ids
}

// Fetch returns field (doveadm fetch's name: "text" for the whole
// message, "body", "hdr") of every message in user's INBOX as doveadm
// prints it: "FIELD:\n" before each value.
func (d *Dovecot) Fetch(user, field string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("doveadm", "-c", d.conf, "fetch", "-u", user, field, "mailbox", "INBOX")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("doveadm fetch %s: %w\n%s", field, err, stderr.String())
	}
	return out, nil
}

// openPath makes dir and its parents up to the temporary directory
// readable and searchable by everyone: the servers' processes that run
// as nobody must reach it.
func openPath(dir string) {
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
}
