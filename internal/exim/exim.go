// Package exim runs a throwaway Exim as the sending MTA of a test: a real
// client of CHUNKING (RFC 3030), which Exim uses whenever the server
// offers it, where Postfix's client always sends DATA.
//
// The Exim is Debian's exim4-daemon-light, unpacked (not installed: it
// would replace Postfix, which other tests need) into Dir by
// .ci/install-deps, and run with a configuration, spool and log of its
// own in a directory of the test's. Every message it is given goes to one
// SMTP server, in plaintext or over STARTTLS, and its log says how: the
// field K of a delivery line means the message went with BDAT, X= names
// the TLS cipher (log_selector = +all).
//
// The binary is set-uid root and gives up root for the user Debian-exim
// when given a configuration file (-C), so the test must run as root,
// and the directory is made for Debian-exim to use.
package exim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Dir is where .ci/install-deps unpacks exim4-daemon-light and
// exim4-base.
const Dir = "/var/cache/mxq-test/exim"

// install is what a test that cannot run Exim is told to do.
const install = ".ci/install-deps (as root) unpacks Debian's exim4-daemon-light into " + Dir

// Config says where an Exim sends its mail and how.
type Config struct {
	// Server is the host:port (an IP address) every message goes to.
	Server string
	// TLS makes Exim start TLS with the server and defer any message it
	// cannot send over TLS (hosts_require_tls); without it Exim never
	// starts TLS (hosts_avoid_tls).
	TLS bool
	// CACert, with TLS, is a PEM file of the certificate the server must
	// present: Exim then verifies it (its name aside) instead of going on
	// whatever the certificate is.
	CACert string
}

// Exim is one instance: its configuration and log, with the binary of Dir.
type Exim struct {
	bin  string
	dir  string
	conf string
}

// New lays out an instance for c in a directory of its own, removed when
// the test ends, and checks that Exim reads its configuration.
func New(t testing.TB, c Config) *Exim {
	t.Helper()
	bin := filepath.Join(Dir, "usr/sbin/exim4")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Exim: %v: %s", err, install)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the tests' Exim runs only as root: with a configuration of its own it gives up root for Debian-exim, and a caller other than root then cannot write its spool")
	}
	eu, err := user.Lookup("Debian-exim")
	if err != nil {
		t.Fatalf("Exim's user: %v: %s", err, install)
	}
	uid, _ := strconv.Atoi(eu.Uid)
	gid, _ := strconv.Atoi(eu.Gid)
	host, port, ok := strings.Cut(c.Server, ":")
	if !ok {
		t.Fatalf("server %q: want host:port", c.Server)
	}
	// Not t.TempDir: Debian-exim must reach the directory, and a test's
	// temporary directories are its owner's alone.
	dir, err := os.MkdirTemp("", "exim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &Exim{bin: bin, dir: dir, conf: filepath.Join(dir, "exim.conf")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exim's log:\n%s", e.logText(0))
		}
	})
	for _, d := range []string{"spool", "log"} {
		p := filepath.Join(dir, d)
		if err := os.Mkdir(p, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tls := "  hosts_avoid_tls = *\n"
	if c.TLS {
		tls = "  hosts_require_tls = *\n"
		if c.CACert != "" {
			ca := filepath.Join(dir, "ca.pem")
			b, err := os.ReadFile(c.CACert)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ca, b, 0o644); err != nil {
				t.Fatal(err)
			}
			tls += "  tls_verify_certificates = " + ca + "\n  tls_verify_hosts = *\n  tls_verify_cert_hostnames =\n"
		}
	}
	conf := strings.NewReplacer("{{bin}}", bin, "{{dir}}", dir, "{{host}}", host, "{{port}}", port, "{{tls}}", tls).Replace(configTemplate)
	if err := os.WriteFile(e.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-C", e.conf, "-bV").CombinedOutput(); err != nil {
		t.Fatalf("exim -bV: %v\n%s\n(%s; it also installs the libraries Exim needs)", err, out, install)
	}
	return e
}

// configTemplate relays every address to one server. Exim re-executes
// itself (exim_path) to deliver. received_header_text is empty so that
// Exim adds no Received field: the server gets the message as given (a
// message with From, Date and Message-ID gets nothing else), and a test
// can compare it byte for byte. hosts_try_chunking = * is Exim's default,
// stated because it is what the tests are for. The server is on
// loopback, which Exim takes for itself unless told (self, allow_localhost).
const configTemplate = `exim_path = {{bin}}
keep_environment =
spool_directory = {{dir}}/spool
log_file_path = {{dir}}/log/%slog
log_selector = +all
primary_hostname = sender.example.com
received_header_text =
message_size_limit = 0
local_from_check = false

begin routers
server:
  driver = manualroute
  route_list = * {{host}}
  self = send
  transport = server

begin transports
server:
  driver = smtp
  port = {{port}}
  allow_localhost
  hosts_try_chunking = *
{{tls}}
begin retry
* * F,1m,1m
`

// Send hands Exim a message from from to rcpt, as a local program would
// (lines end in LF: Exim sends them with CRLF; a line of a single dot is
// text, -oi), has it delivered at once (-odf), and returns the line of
// Exim's log that reports the delivery to the server. The test fails
// when Exim did not deliver the message.
func (e *Exim) Send(t testing.TB, from, rcpt string, msg io.Reader) Delivery {
	t.Helper()
	offset := e.logSize()
	cmd := exec.Command(e.bin, "-C", e.conf, "-odf", "-oi", "-f", from, rcpt)
	cmd.Stdin = msg
	out, err := cmd.CombinedOutput()
	lines := e.logText(offset)
	if err != nil {
		t.Fatalf("exim: %v\n%s\nlog:\n%s", err, out, lines)
	}
	id := ""
	sc := bufio.NewScanner(strings.NewReader(lines))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// 2006-01-02 15:04:05.000 [PID] ID <= FROM ... or ID => RCPT ...
		if len(f) < 5 {
			continue
		}
		switch {
		case f[4] == "<=" && id == "":
			id = f[3]
		case f[4] == "=>" && f[3] == id:
			return Delivery{Line: sc.Text()}
		}
	}
	t.Fatalf("exim did not deliver the message to %s (received as %q):\n%s%s", rcpt, id, out, lines)
	return Delivery{}
}

// Delivery is a line of Exim's log that reports a delivery ("=>").
type Delivery struct {
	Line string
}

// Field returns the value of a field of the line (C for the server's
// reply, X for the TLS cipher, CV for the certificate's verification)
// and whether the line has it; a flag such as K (CHUNKING was used) has
// no value. A quoted value comes without its quotes.
func (d Delivery) Field(name string) (string, bool) {
	for _, f := range fields(d.Line) {
		k, v, _ := strings.Cut(f, "=")
		if k != name {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return "", false
}

// fields splits a log line at the spaces outside quotes (C="250 ...").
func fields(line string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quoted && c == '\\':
			i++ // an escaped character, a quote perhaps
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted:
			if i > start {
				out = append(out, line[start:i])
			}
			start = i + 1
		}
	}
	if start < len(line) {
		out = append(out, line[start:])
	}
	return out
}

// logSize is the size of the main log now.
func (e *Exim) logSize() int64 {
	fi, err := os.Stat(filepath.Join(e.dir, "log", "mainlog"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logText is the main log from offset on, and the panic log if Exim
// wrote one.
func (e *Exim) logText(offset int64) string {
	var b bytes.Buffer
	if f, err := os.Open(filepath.Join(e.dir, "log", "mainlog")); err == nil {
		f.Seek(offset, io.SeekStart)
		io.Copy(&b, f)
		f.Close()
	}
	if p, err := os.ReadFile(filepath.Join(e.dir, "log", "paniclog")); err == nil {
		fmt.Fprintf(&b, "paniclog:\n%s", p)
	}
	return b.String()
}
