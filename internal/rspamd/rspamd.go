// Package rspamd runs a throwaway rspamd (Debian's package, 3.4) as the
// milter of a test: its proxy worker in milter mode, scanning itself, on a
// free loopback port (or where StartWith's Options put it, such as a
// network namespace of the test network), with a configuration,
// database, run and log directory of its own and every module that
// would use the network off (its DNS goes to a closed loopback port).
//
// rspamd needs about 25 seconds to start (it compiles its list of
// top-level domains and its regular expressions), so a test package
// starts one and shares it: Start from a sync.Once, Stop from TestMain.
//
// Test rules make its verdicts come on demand: GTUBE gets "reject"
// (rspamd's own rule, "554 5.7.1 Gtube pattern"), a Subject containing
// RewriteMarker gets "rewrite subject" (SubjectPrefix put in front), one
// containing QuarantineMarker or DiscardMarker gets "reject" turned into
// a quarantine (SMFIR_QUARANTINE with QuarantineReason, then accept) or
// a discard, as rspamd's quarantine_on_reject and discard_on_reject
// options would turn every reject. Its milter_headers module adds X-Spam-Status (removing the
// sender's), X-Spamd-Result and X-Rspamd-Queue-Id.
package rspamd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Install is what a test that cannot run rspamd is told to do.
const Install = ".ci/install-deps (apt-get install rspamd; the package's own service is disabled)"

// RewriteMarker in a Subject makes the test rule answer "rewrite
// subject"; the new Subject is SubjectPrefix and the old one.
const (
	RewriteMarker = "MXQ_TEST_REWRITE"
	SubjectPrefix = "[SPAM] "
)

// QuarantineMarker and DiscardMarker in a Subject make rspamd quarantine
// or discard the message; QuarantineReason is the reason rspamd gives.
const (
	QuarantineMarker = "MXQ_TEST_QUARANTINE"
	DiscardMarker    = "MXQ_TEST_DISCARD"
	QuarantineReason = "Spam message quarantined"
)

// Server is a running rspamd.
type Server struct {
	// Addr is the milter's address, host:port.
	Addr string
	// Socket is the path of the Unix socket the milter listens on too
	// (unix:PATH in a milter list), in rspamd's directory.
	Socket string
	dir    string
	bin    string
	prefix []string
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
}

// Options place rspamd elsewhere than on free loopback ports of the
// test's own host.
type Options struct {
	// Bind is the address its milter listens on, host:port; its other
	// workers (off) are given the next two ports of that host. The
	// test must be able to connect to it: Start waits for it to accept
	// a connection. Empty: free ports on 127.0.0.1.
	Bind string
	// Prefix comes before rspamd's command line, such as ip netns exec
	// NS to run it in a network namespace; the command must exec
	// rspamd, so that its process is rspamd's.
	Prefix []string
}

// modulesOff are the modules that reach out to the network (DNS lists,
// fuzzy storage, map downloads, Redis) or need state the test lacks.
var modulesOff = []string{"rbl", "surbl", "fuzzy_check", "spf", "dkim", "dmarc", "arc", "asn", "emails",
	"phishing", "dcc", "neural", "ratelimit", "greylist", "replies", "reputation", "url_redirector",
	"history_redis", "dkim_signing", "mx_check", "hfilter", "once_received", "whitelist", "multimap",
	"bimi", "rspamd_update", "p0f", "maillist", "spamassassin", "clickhouse", "elastic",
	"external_services", "antivirus", "metric_exporter"}

// Start starts rspamd in a new temporary directory and waits until its
// milter port accepts connections, or ctx ends. The caller must Stop it.
func Start(ctx context.Context) (*Server, error) { return StartWith(ctx, Options{}) }

// StartWith is Start with rspamd where o puts it.
func StartWith(ctx context.Context, o Options) (*Server, error) {
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/rspamd"); serr != nil {
			return nil, fmt.Errorf("rspamd not found: %s", Install)
		}
		bin = "/usr/bin/rspamd"
	}
	dir, err := os.MkdirTemp("", "rspamd-test-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, prefix: o.Prefix, done: make(chan struct{})}
	host, ports := "127.0.0.1", []int{}
	if o.Bind != "" {
		h, p, err := net.SplitHostPort(o.Bind)
		n, perr := strconv.Atoi(p)
		if err != nil || perr != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("rspamd bind address %q: want host:port", o.Bind)
		}
		host, ports = h, []int{n, n + 1, n + 2}
	} else if ports, err = freePorts(3); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.Addr = net.JoinHostPort(host, strconv.Itoa(ports[0]))
	s.Socket = filepath.Join(dir, "run", "milter.sock")
	if err := s.configure(host, ports); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.bin = bin
	if err := s.run(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// run starts rspamd and waits until its milter port accepts connections,
// or ctx ends.
func (s *Server) run(ctx context.Context) error {
	dir := s.dir
	s.done = make(chan struct{})
	argv := append(append([]string(nil), s.prefix...), s.bin, "-f", "-u", "root", "-g", "root", "-c", "/etc/rspamd/rspamd.conf",
		"--var", "LOCAL_CONFDIR="+filepath.Join(dir, "conf"), "--var", "DBDIR="+filepath.Join(dir, "db"),
		"--var", "RUNDIR="+filepath.Join(dir, "run"), "--var", "LOGDIR="+filepath.Join(dir, "log"))
	s.cmd = exec.Command(argv[0], argv[1:]...)
	// rspamd goes with the test binary, also when it is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	cmd, done := s.cmd, s.done
	go func() { cmd.Wait(); close(done) }()
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("rspamd exited: %v\n%s", cmd.ProcessState, s.Log())
		case <-ctx.Done():
			log := s.Log()
			s.kill()
			return fmt.Errorf("rspamd did not listen on %s: %w\n%s", s.Addr, ctx.Err(), log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Restart stops rspamd as its service's restart does (SIGTERM: it
// finishes what it has started and exits) and starts it again with the
// same configuration, ports and database, as an operator's restart does;
// it returns once the milter port accepts connections again.
func (s *Server) Restart(ctx context.Context) error {
	s.kill()
	return s.run(ctx)
}

// Pid is the process id of rspamd's main process; its workers are its
// children.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Log returns the end of rspamd's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log", "rspamd.log"))
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	return string(b)
}

// Stop ends rspamd and removes its directory.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.dir)
}

// kill ends rspamd's whole process group (the main process and its
// workers) with SIGTERM, and SIGKILL after 10 s.
func (s *Server) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *Server) configure(host string, ports []int) error {
	files := map[string]string{
		"override.d/worker-proxy.inc": fmt.Sprintf(`bind_socket = "%s:%d";
bind_socket = "%s mode=0666";
milter = yes;
timeout = 120s;
upstream "local" { default = yes; self_scan = yes; }
count = 1;
`, host, ports[0], s.Socket),
		"override.d/worker-normal.inc":     fmt.Sprintf("bind_socket = \"%s:%d\";\nenabled = false;\n", host, ports[1]),
		"override.d/worker-controller.inc": fmt.Sprintf("bind_socket = \"%s:%d\";\nenabled = false;\n", host, ports[2]),
		// A DNS server that is not there answers at once.
		"local.d/options.inc": "dns { nameserver = [\"127.0.0.1:1\"]; timeout = 100ms; retransmits = 1; }\ncontrol_socket = \"\";\n",
		// The tests' clients are on loopback, which rspamd counts as
		// local and would give no headers.
		"local.d/milter_headers.conf": `use = ["x-spam-status", "x-spamd-result", "x-rspamd-queue-id"];
skip_local = false;
`,
		"local.d/actions.conf": fmt.Sprintf("subject = %q;\n", SubjectPrefix+"%s"),
		"rspamd.local.lua": fmt.Sprintf(`rspamd_config:register_symbol{
  name = 'MXQ_TEST_REWRITE',
  type = 'prefilter',
  priority = 10,
  callback = function(task)
    local s = task:get_header('Subject')
    if s and s:find(%q, 1, true) then
      task:set_pre_result('rewrite subject', 'test rule')
    elseif s and s:find(%q, 1, true) then
      task:set_milter_reply({reject = 'quarantine'})
      task:set_pre_result('reject', 'test quarantine')
    elseif s and s:find(%q, 1, true) then
      task:set_milter_reply({reject = 'discard'})
      task:set_pre_result('reject', 'test discard')
    end
  end,
}
`, RewriteMarker, QuarantineMarker, DiscardMarker),
	}
	for _, m := range modulesOff {
		files["local.d/"+m+".conf"] = "enabled = false;\n"
	}
	for _, d := range []string{"conf/local.d", "conf/override.d", "db", "run", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(s.dir, "conf", name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n ports free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
