package upgrade

import (
	"bufio"
	"fmt"
	"maps"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// load sends mail without pause over a few SMTP clients, each message
// with its own Message-ID, to the MX hosts that are "in DNS" (targets),
// round robin. A host is taken out of the targets before it stops, the
// way dnsctl drains it, so that no sender meets a closed port.
type load struct {
	mu       sync.Mutex
	targets  map[string]target // by host
	inflight map[string]int    // host → sessions open to it
	drained  *sync.Cond
	phase    string
	sent     map[string]sent // by Message-ID
	errs     []string
	next     int
	stop     chan struct{}
	wg       sync.WaitGroup
}

// target is an MX host to send to.
type target struct{ addr, version string }

// sent is one message the MX host answered 250.
type sent struct {
	phase, host, version string
}

func startLoad(senders int) *load {
	l := &load{targets: map[string]target{}, inflight: map[string]int{}, sent: map[string]sent{}, stop: make(chan struct{})}
	l.drained = sync.NewCond(&l.mu)
	for i := range senders {
		l.wg.Add(1)
		go l.run(i)
	}
	return l
}

func (l *load) run(sender int) {
	defer l.wg.Done()
	// A pause between messages keeps the rate modest, about 60 per
	// second per sender on a fast machine: the test is about versions,
	// not speed.
	tick := time.NewTicker(15 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		host, to, phase, ok := l.pick()
		if !ok {
			continue
		}
		id := fmt.Sprintf("%d.%d.%d@sender.example.com", sender, n, time.Now().UnixNano())
		msg := fmt.Sprintf("From: <sender@example.com>\r\nTo: <%s>\r\nSubject: %s %d\r\nMessage-ID: <%s>\r\n\r\nphase %s, sender %d, message %d\r\n",
			rcpt, phase, n, id, phase, sender, n)
		err := smtp.SendMail(to.addr, nil, "sender@example.com", []string{rcpt}, []byte(msg))
		l.mu.Lock()
		l.inflight[host]--
		if err != nil {
			l.errs = append(l.errs, fmt.Sprintf("%s: %s via %s: %v", phase, id, host, err))
		} else {
			l.sent[id] = sent{phase: phase, host: host, version: to.version}
		}
		l.drained.Broadcast()
		l.mu.Unlock()
	}
}

// pick chooses the next target and counts the session to it.
func (l *load) pick() (host string, to target, phase string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hosts := make([]string, 0, len(l.targets))
	for h := range l.targets {
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return "", target{}, "", false
	}
	slices.Sort(hosts)
	host = hosts[l.next%len(hosts)]
	l.next++
	l.inflight[host]++
	return host, l.targets[host], l.phase, true
}

// add puts host, whose mxd of version listens at addr, into the targets.
func (l *load) add(host, addr, version string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.targets[host] = target{addr: addr, version: version}
}

// remove takes host out of the targets and waits for its sessions to end.
func (l *load) remove(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.targets, host)
	for l.inflight[host] > 0 {
		l.drained.Wait()
	}
}

// setPhase labels the messages sent from now on.
func (l *load) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

// finish stops the senders.
func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// snapshot returns what was sent so far and the errors.
func (l *load) snapshot() (map[string]sent, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.sent), slices.Clone(l.errs)
}

// maildir counts the copies of each Message-ID in the Maildir the
// listds deliver to. A file is read once: a delivered file never changes.
type maildir struct {
	dir    string
	seen   map[string]string // file → Message-ID
	copies map[string]int
}

func newMaildir(dir string) *maildir {
	return &maildir{dir: dir, seen: map[string]string{}, copies: map[string]int{}}
}

// scan reads the files delivered since the last scan.
func (m *maildir) scan() error {
	for _, sub := range []string{"new", "cur"} {
		files, err := os.ReadDir(filepath.Join(m.dir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, f := range files {
			path := filepath.Join(m.dir, sub, f.Name())
			if _, ok := m.seen[path]; ok {
				continue
			}
			id, err := messageID(path)
			if err != nil {
				return err
			}
			m.seen[path] = id
			m.copies[id]++
		}
	}
	return nil
}

// messageID reads the Message-ID of the file at path, without <>.
func messageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.Trim(strings.TrimSpace(v), "<>"), nil
		}
	}
	return "", fmt.Errorf("%s: no Message-ID", path)
}
