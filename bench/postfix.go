package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A target is one server under load, and how the load tool talks to it.
type target struct {
	name   string   // as in -targets
	server string   // the server's name: targets with the same one share it
	client []string // the load tool's flags for this target (STARTTLS)
	addr   string
	pids   []string // for smtpload -pid, the first being the server itself
	// memPid, when set, is the process whose peak RSS each run reports.
	memPid int
	stop   func()
	// depth, when set, counts the messages the server holds, to check
	// that every 250 was really queued.
	depth func() (int, error)
	// settle, when set, waits until the server has finished the work the
	// load left behind, so that it does not steal the next target's CPU.
	settle func(context.Context) error
}

// startSink starts Postfix's smtp-sink: SMTP with PIPELINING and no
// storage, the protocol limit of this machine.
func (b *bench) startSink(ctx context.Context) (*target, error) {
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := loopback(port)
		// -u: smtp-sink refuses to run as root; 1024: listen backlog.
		p, err := startProc("smtp-sink", filepath.Join(b.dir, "smtp-sink.log"),
			"smtp-sink", "-u", "nobody", "-h", "sink.bench.invalid", addr, "1024")
		if err != nil {
			return nil, err
		}
		b.onExit(func() { p.stop(5 * time.Second) })
		if lastErr = waitFor(ctx, "smtp-sink", 10*time.Second, procAlive(p), smtpReady(addr)); lastErr == nil {
			return &target{name: "smtp-sink", addr: addr, pids: []string{strconv.Itoa(p.pid())}, stop: func() { p.stop(5 * time.Second) }}, nil
		}
		p.stop(time.Second)
	}
	return nil, lastErr
}

// postfixMainCf is a throwaway instance: its own queue and data directory,
// loopback only, relaying for the bench domain, and every message delivered
// to discard(8): accepted mail is fsynced into the queue as usual (cleanup
// does that before smtpd answers 250), then dropped by the queue manager,
// and nothing ever leaves the machine. The size limit is raised from the
// stock 10,240,000 bytes to 64 MiB, above mxd's default of 32 MiB, so that
// both accept the big messages of -mode big and burst.
const postfixMainCf = `compatibility_level = 3.6
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {{domain}}
relay_transport = discard:
default_transport = discard:
local_transport = discard:
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
message_size_limit = 67108864
mailbox_size_limit = 0
biff = no
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
`

// postfixConfig is the throwaway instance's main.cf and master.cf. With
// cert, smtpd offers STARTTLS with that certificate and key (the files
// mxd gets too), as an MX does: smtpd_tls_security_level = may. With
// noPeerLookup, smtpd looks up no name for the client's address: the load
// comes from many loopback addresses that only the bench's own DNS server
// knows, which Postfix, using the system resolver, cannot be pointed at.
// That saves Postfix work that mxd does (its iprev check).
func postfixConfig(dir, domain, listen string, cert *certFiles, noPeerLookup bool) (mainCf, masterCf string) {
	r := strings.NewReplacer("{{dir}}", dir, "{{domain}}", domain, "{{listen}}", listen)
	mainCf = r.Replace(postfixMainCf)
	if cert != nil {
		mainCf += fmt.Sprintf("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n", cert.cert, cert.key)
	}
	if noPeerLookup {
		mainCf += "smtpd_peername_lookup = no\n"
	}
	return mainCf, r.Replace(postfixMasterCf)
}

// postfixMasterCf runs the daemons unchrooted (no copies of /etc needed)
// with the stock process limits (100 smtpd). tlsmgr keeps the PRNG seed
// and the keys of TLS session tickets, as in the stock master.cf.
const postfixMasterCf = `{{listen}} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
`

// startPostfix starts a throwaway Postfix with postfix -c DIR start; it is
// stopped with postfix -c DIR stop. name is the server's name in logs and
// file names.
func (b *bench) startPostfix(ctx context.Context, name string, cert *certFiles) (*target, error) {
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		return nil, fmt.Errorf("postfix user: %w (apt-get install postfix)", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	var lastErr error
	for attempt := range 3 {
		dir := filepath.Join(b.dir, fmt.Sprintf("%s%d", name, attempt))
		etc := filepath.Join(dir, "etc")
		for _, d := range []string{etc, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := loopback(port)
		mainCf, masterCf := postfixConfig(dir, b.domain, addr, cert, b.source != "")
		if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCf), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(masterCf), 0o644); err != nil {
			return nil, err
		}
		stop := func() {
			exec.Command("postfix", "-c", etc, "stop").Run()
			// postfix stop returns before master has exited; make sure.
			if pid, err := readPid(filepath.Join(dir, "queue", "pid", "master.pid")); err == nil {
				waitGone(pid, 10*time.Second)
			}
		}
		b.onExit(stop)
		out, err := exec.CommandContext(ctx, "postfix", "-c", etc, "start").CombinedOutput()
		if err != nil {
			lastErr = fmt.Errorf("postfix -c %s start: %v: %s\n%s", etc, err, out, tail(filepath.Join(dir, "maillog"), 10))
			stop()
			continue
		}
		pidFile := filepath.Join(dir, "queue", "pid", "master.pid")
		var pid int
		err = waitFor(ctx, name, 20*time.Second, nil, func() error {
			if pid, err = readPid(pidFile); err != nil {
				return err
			}
			return smtpReady(addr)()
		})
		if err != nil {
			lastErr = fmt.Errorf("%w\n%s", err, tail(filepath.Join(dir, "maillog"), 10))
			stop()
			continue
		}
		queue := filepath.Join(dir, "queue")
		settle := func(ctx context.Context) error {
			return waitFor(ctx, name+" queue empty", 2*time.Minute, nil, func() error { return queueEmpty(queue) })
		}
		return &target{name: name, addr: addr, pids: []string{strconv.Itoa(pid)}, stop: stop, settle: settle}, nil
	}
	return nil, lastErr
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// waitGone waits until pid no longer exists, up to timeout.
func waitGone(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// queueEmpty fails while Postfix still has messages in its queue.
func queueEmpty(queue string) error {
	n := 0
	for _, sub := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		filepath.WalkDir(filepath.Join(queue, sub), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	if n > 0 {
		return fmt.Errorf("%d messages in the queue", n)
	}
	return nil
}
