package network

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/postfix"
)

// MXD is one mxd on its host.
type MXD struct {
	Host    *Host
	Name    string // its hostname, e.g. "mx1.lists.example.org"
	Config  string
	Metrics string
	Proc    *Proc
}

// NewMXD writes the config of an mxd on h, with the extra lines at its
// end.
func NewMXD(t testing.TB, h *Host, name, listDom, redisURL, resolver string, extra ...string) *MXD {
	t.Helper()
	conf := filepath.Join(h.lab.Dir, h.Name+"-mxd.toml")
	m := &MXD{Host: h, Name: name, Config: conf, Metrics: h.IP + ":9125"}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = %q
listen = ["%s:25"]
domains = [%q]
authserv_id = %q
redis = %q
metrics_listen = %q
heartbeat_interval = "500ms"
shutdown_timeout = "20s"
registry_ttl = "2s"
dns_resolver = %q
%s`, name, h.IP, listDom, listDom, redisURL, m.Metrics, resolver, lines(extra))), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Start starts mxd and waits until it listens.
func (m *MXD) Start(t testing.TB, bin string) {
	t.Helper()
	m.Proc = m.Host.Start("mxd", bin, "-config", m.Config)
	waitTCP(t, m.Proc, m.Host.IP+":25")
}

// Sink is where listd delivers in the test network: Postfix's smtp-sink,
// a real SMTP server that writes every message it is given to a file of
// its own. A message delivered twice shows as two files, as it would
// reach a list manager twice. (A Maildir route names a copy after its
// queue id: a second delivery would replace the first unseen, and the
// file's time would be the second's.)
type Sink struct {
	Addr string // host:port
	Dir  string // one file per delivery
}

// StartSink starts smtp-sink on h, port 2525.
func StartSink(t testing.TB, h *Host) *Sink {
	t.Helper()
	s := &Sink{Addr: h.IP + ":2525", Dir: filepath.Join(h.lab.Dir, "delivered")}
	// smtp-sink writes its files as nobody.
	if err := os.Mkdir(s.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.Dir, 0o777) // past the umask
	// -d: one file per message, named by the template plus a random
	// suffix; 64: the listen backlog.
	p := h.Start("smtp-sink", "smtp-sink", "-u", "nobody", "-h", "sink."+h.Name, "-d", s.Dir+"/%H%M%S.", s.Addr, "64")
	waitTCP(t, p, s.Addr)
	return s
}

// Postfix is the sending MTA: a real Postfix in its own config directory,
// relaying what it is given to the list domain by MX lookup.
type Postfix struct {
	Host *Host
	Dir  string
	etc  string
}

// senderMainCf makes the instance (internal/postfix) relay what it is
// given by MX lookup, from its host's address.
const senderMainCf = `myhostname = sender.{{zone}}
mydomain = {{zone}}
myorigin = $myhostname
inet_interfaces = {{ip}}
inet_protocols = ipv4
smtp_bind_address = {{ip}}
mynetworks = {{subnet}}0/24
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_host_lookup = dns
disable_dns_lookups = no
smtp_tls_security_level = none
# Retry quickly, so that the test sees the end within minutes.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
smtp_connect_timeout = 3s
smtp_helo_timeout = 10s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
default_destination_concurrency_limit = 10
`

// StartPostfix starts the sender's Postfix on h.
// Lines of extra come after the stock ones in main.cf, where the last
// setting of a name wins.
func StartPostfix(t testing.TB, h *Host, zone string, extra ...string) *Postfix {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, "postfix")
	r := strings.NewReplacer("{{zone}}", zone, "{{ip}}", h.IP, "{{subnet}}", h.lab.subnet)
	etc, err := postfix.Write(dir, h.IP+":25", r.Replace(senderMainCf)+lines(extra))
	if err != nil {
		t.Fatal(err)
	}
	p := &Postfix{Host: h, Dir: dir, etc: etc}
	if out, err := h.Run("postfix", "-c", etc, "start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.Log())
	}
	t.Cleanup(func() {
		h.Run("postfix", "-c", etc, "stop")
		if pid, err := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid")); err == nil {
			n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
			deadline := time.Now().Add(10 * time.Second)
			for n > 0 && processAlive(n) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
		// Its maillog is in the lab's directory: the lab saves and
		// prints it with the others when the test fails.
	})
	waitTCP(t, nil, h.IP+":25")
	return p
}

// Log is Postfix's maillog.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	return string(b)
}

// QueueCount is how many messages Postfix holds (active, deferred, …).
func (p *Postfix) QueueCount() int {
	n := 0
	for _, sub := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		filepath.WalkDir(filepath.Join(p.Dir, "queue", sub), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// Deferrals counts the maillog's status=deferred lines by the
// Message-ID of the message each is about.
func (p *Postfix) Deferrals() map[string]int {
	out := map[string]int{}
	for id, ls := range p.LinesByMessage(func(l string) bool { return strings.Contains(l, "status=deferred") }) {
		out[id] = len(ls)
	}
	return out
}

// LinesByMessage returns the maillog's lines about a message that match,
// by the Message-ID of the message (found through the queue id that
// cleanup logged it with).
func (p *Postfix) LinesByMessage(match func(line string) bool) map[string][]string {
	ids := map[string]string{} // queue id → Message-ID
	out := map[string][]string{}
	for _, line := range strings.Split(p.Log(), "\n") {
		// "… postfix/smtp[123]: 4dQ9fX2: to=<…>, …, status=deferred (…)"
		_, rest, ok := strings.Cut(line, "]: ")
		if !ok {
			continue
		}
		qid, rest, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		if v, ok := strings.CutPrefix(rest, "message-id=<"); ok {
			ids[qid], _, _ = strings.Cut(v, ">")
		} else if match(rest) {
			out[ids[qid]] = append(out[ids[qid]], rest)
		}
	}
	return out
}

// Flush asks Postfix to retry its deferred mail now.
func (p *Postfix) Flush() { p.Host.Run("postqueue", "-c", p.etc, "-f") }

// lines joins config lines, each ended by a newline.
func lines(ls []string) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func tailText(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
