package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mxq/internal/postfix"
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
	// redisAddr and redisPid, when set, are the primary redis-server
	// whose CPU and commandstats each measured run reports.
	redisAddr string
	redisPid  int
	// consume, when set and -consume is during, runs the server's
	// consumer while a load runs, until the returned stop is called.
	consume func(context.Context) (stop func() error)
	// pacedBy, when set, names the target whose rate in the same round
	// this one's load is started at (smtpload -rate).
	pacedBy string
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

// postfixMainCf makes the instance (internal/postfix) loopback only,
// relaying for the bench domain, and delivering every message to
// discard(8): accepted mail is fsynced into the queue as usual (cleanup
// does that before smtpd answers 250), then dropped by the queue manager,
// and nothing ever leaves the machine. The size limit is raised from the
// stock 10,240,000 bytes to 64 MiB, above mxd's default of 32 MiB, so that
// both accept the big messages of -mode big and burst.
const postfixMainCf = `myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {{domain}}
relay_transport = discard:
default_transport = discard:
local_transport = discard:
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
message_size_limit = 67108864
mailbox_size_limit = 0
`

// postfixConfig is the main.cf lines of the bench's instance, after the
// ones internal/postfix places it in its directory with. With cert, smtpd
// offers STARTTLS with that certificate and key (the files mxd gets too),
// as an MX does: smtpd_tls_security_level = may. With noPeerLookup, smtpd
// looks up no name for the client's address: the load comes from many
// loopback addresses that only the bench's own DNS server knows, which
// Postfix, using the system resolver, cannot be pointed at. That saves
// Postfix work that mxd does (its iprev check). With milter, smtpd passes
// every message to it (smtpd_milters), with Postfix's defaults otherwise:
// milter_default_action = tempfail, protocol 6.
func postfixConfig(domain string, cert *certFiles, noPeerLookup bool, milter string) string {
	mainCf := strings.ReplaceAll(postfixMainCf, "{{domain}}", domain)
	if cert != nil {
		mainCf += fmt.Sprintf("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n", cert.cert, cert.key)
	}
	if noPeerLookup {
		mainCf += "smtpd_peername_lookup = no\n"
	}
	if milter != "" {
		mainCf += "smtpd_milters = " + milter + "\n"
	}
	return mainCf
}

// startPostfix starts a throwaway Postfix with postfix -c DIR start; it is
// stopped with postfix -c DIR stop. name is the server's name in logs and
// file names.
func (b *bench) startPostfix(ctx context.Context, name string, cert *certFiles, milter string) (*target, error) {
	var lastErr error
	for attempt := range 3 {
		dir := filepath.Join(b.dir, fmt.Sprintf("%s%d", name, attempt))
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := loopback(port)
		etc, err := postfix.Write(dir, addr, postfixConfig(b.domain, cert, b.source != "", milter))
		if err != nil {
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
