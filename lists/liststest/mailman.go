package liststest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
)

// Mailman is a Mailman 3 run by a test: its master and the runners that
// take a post from LMTP to the archive and to the subscribers (lmtp, in,
// pipeline, archive, out), with its state (SQLite, queues, logs) in a
// directory of the test's. Its LMTP runner listens on LMTP; its out
// runner sends through the relay given to StartMailman. The "prototype"
// archiver keeps each list's archive as a Maildir (Archive).
type Mailman struct {
	// LMTP is where the LMTP runner listens, "127.0.0.1:PORT".
	LMTP string
	t    testing.TB
	bin  string
	conf string
	vard string
}

const mailmanInstall = "install it with `apt-get install mailman3` (or run `make test`)"

// mailmanStart bounds the start of Mailman's runners: each is a Python
// process that imports all of Mailman, 20–40 s for the five on a busy
// 2-core machine.
const mailmanStart = 3 * time.Minute

// MailmanMTA is the [mta] section of mailman.cfg that StartMailman uses
// when given none: the null MTA, since no Postfix maps are wanted.
const MailmanMTA = `[mta]
incoming: mailman.mta.null.NullMTA
lmtp_host: 127.0.0.1
lmtp_port: 8024
smtp_host: 127.0.0.1
smtp_port: 25
`

// StartMailman writes a mailman.cfg (layout "local" under a temp dir,
// SQLite, the prototype archiver, and mta, an [mta] section as an
// operator writes it, MailmanMTA if empty, with its lmtp_host and
// lmtp_port set to a free loopback port and its smtp_host and smtp_port
// to relay), creates each list of lists with its members (no welcome
// message), starts the master with the five runners, and waits until the
// LMTP runner greets. It stops them all when the test ends.
func StartMailman(t testing.TB, mta, relay string, lists map[string][]string) *Mailman {
	t.Helper()
	bin := servertest.LookPath(t, "mailman", mailmanInstall)
	const libexec = "/usr/lib/mailman3/bin"
	if _, err := os.Stat(filepath.Join(libexec, "master")); err != nil {
		t.Fatalf("Mailman's master is not in %s: %s", libexec, mailmanInstall)
	}
	dir := t.TempDir()
	vard := filepath.Join(dir, "var")
	host, port, _ := strings.Cut(relay, ":")
	m := &Mailman{LMTP: "127.0.0.1:" + strconv.Itoa(servertest.FreePort(t)), t: t, bin: bin, vard: vard}
	_, lmtpPort, _ := strings.Cut(m.LMTP, ":")
	if mta == "" {
		mta = MailmanMTA
	}
	set := map[string]string{"lmtp_host": "127.0.0.1", "lmtp_port": lmtpPort, "smtp_host": host, "smtp_port": port}
	var mtaLines []string
	for _, l := range strings.Split(strings.TrimSpace(mta), "\n") {
		k, _, _ := strings.Cut(l, ":")
		if v, ok := set[strings.TrimSpace(k)]; ok {
			l = strings.TrimSpace(k) + ": " + v
			delete(set, strings.TrimSpace(k))
		}
		mtaLines = append(mtaLines, l)
	}
	if len(set) > 0 {
		t.Fatalf("the [mta] section lacks %v:\n%s", set, mta)
	}
	conf := fmt.Sprintf(`[mailman]
layout: local
site_owner: postmaster@example.org

[paths.local]
var_dir: %s
bin_dir: %s

%s

[archiver.prototype]
enable: yes

[runner.bounces]
start: no
[runner.command]
start: no
[runner.digest]
start: no
[runner.nntp]
start: no
[runner.rest]
start: no
[runner.retry]
start: no
[runner.task]
start: no
[runner.virgin]
start: no
`, vard, libexec, strings.Join(mtaLines, "\n"))
	m.conf = servertest.WriteFile(t, dir, "mailman.cfg", conf)

	for list, members := range lists {
		m.run("create", list)
		if len(members) > 0 {
			f := servertest.WriteFile(t, dir, "members", strings.Join(members, "\n")+"\n")
			m.run("addmembers", "--no-welcome-msg", f, list)
		}
	}

	out := &servertest.Log{}
	cmd := exec.Command(filepath.Join(libexec, "master"), "-C", m.conf)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that the runners it forks can be stopped
	// with it; and killed with the test process if that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM: the master passes it to the runners and waits for them.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("mailman master output:\n%s\nmailman.log:\n%s", out.String(), m.log())
		}
	})
	deadline := time.Now().Add(mailmanStart)
	for {
		c, err := net.DialTimeout("tcp", m.LMTP, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				return m
			}
		}
		select {
		case <-exited:
			t.Fatalf("mailman's master exited at start:\n%s\n%s", out.String(), m.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailman's LMTP runner did not answer on %s within %v: %v\n%s", m.LMTP, mailmanStart, err, m.log())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// run runs `mailman COMMAND ARGS` against this instance. Mailman refuses
// to run as root unless told that it may; the tests run as root in CI.
func (m *Mailman) run(args ...string) string {
	m.t.Helper()
	argv := append([]string{"--run-as-root", "-C", m.conf}, args...)
	out, err := exec.Command(m.bin, argv...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("mailman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (m *Mailman) log() string {
	b, _ := os.ReadFile(filepath.Join(m.vard, "logs", "mailman.log"))
	return string(b)
}

// Archive returns the messages that the prototype archiver stored for
// list (posting address), each as it was written.
func (m *Mailman) Archive(list string) []string {
	m.t.Helper()
	return maildirMessages(m.t, filepath.Join(m.vard, "archives", "prototype", list))
}

// Queued returns how many messages wait in Mailman's queue name ("in",
// "out", "retry", "shunt", ...).
func (m *Mailman) Queued(name string) int {
	m.t.Helper()
	ents, err := os.ReadDir(filepath.Join(m.vard, "queue", name))
	if err != nil && !os.IsNotExist(err) {
		m.t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".pck") {
			n++
		}
	}
	return n
}
