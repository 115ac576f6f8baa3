package network

import (
	"bufio"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Load submits messages with unique Message-IDs to the sender's Postfix
// at a steady rate until Stop. Every SpamEvery-th message is spam: GTUBE
// in its body, from the null sender (so that the sender's Postfix, told
// 5xx, bounces it to nobody), kept apart from the legitimate mail.
type Load struct {
	addr, from, rcpt string
	every            time.Duration

	mu       sync.Mutex
	sent     map[string]Sent // legitimate mail, by Message-ID
	spam     map[string]Sent // spam, by Message-ID
	errs     []string
	phase    string
	stop     chan struct{}
	finished chan struct{}
}

// Sent is one submitted message.
type Sent struct {
	At    time.Time
	Phase string
}

// SpamEvery is how often the load sends spam: one message in SpamEvery.
const SpamEvery = 10

// GTUBE is the spam test string every spam filter refuses.
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// StartLoad begins submitting rate messages per second.
func StartLoad(addr, from, rcpt string, rate int) *Load {
	l := &Load{addr: addr, from: from, rcpt: rcpt, every: time.Second / time.Duration(rate),
		sent: map[string]Sent{}, spam: map[string]Sent{}, stop: make(chan struct{}), finished: make(chan struct{}), phase: "warm-up"}
	go l.run()
	return l
}

func (l *Load) run() {
	defer close(l.finished)
	t := time.NewTicker(l.every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		id := fmt.Sprintf("%d.%d@sender.lists.example.org", n, time.Now().UnixNano())
		spam := n%SpamEvery == 0
		from, body := l.from, fmt.Sprintf("message %d", n)
		if spam {
			from, body = "", GTUBE
		}
		msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\nMessage-ID: <%s>\r\nDate: %s\r\n\r\n%s\r\n",
			l.from, l.rcpt, n, id, time.Now().Format(time.RFC1123Z), body)
		at := time.Now()
		err := smtp.SendMail(l.addr, nil, from, []string{l.rcpt}, []byte(msg))
		l.mu.Lock()
		switch {
		case err != nil:
			l.errs = append(l.errs, fmt.Sprintf("%s: %v", id, err))
		case spam:
			l.spam[id] = Sent{At: at, Phase: l.phase}
		default:
			l.sent[id] = Sent{At: at, Phase: l.phase}
		}
		l.mu.Unlock()
	}
}

// SetPhase labels the messages submitted from now on.
func (l *Load) SetPhase(name string) {
	l.mu.Lock()
	l.phase = name
	l.mu.Unlock()
}

// Stop ends the submissions and returns what was submitted: the
// legitimate mail, the spam, and the failed submissions.
func (l *Load) Stop() (sent, spam map[string]Sent, errs []string) {
	close(l.stop)
	<-l.finished
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, l.spam, l.errs
}

// Count is how many messages were submitted so far, spam included.
func (l *Load) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent) + len(l.spam)
}

// Delivered reads a directory with one file per delivery (the sink's)
// and returns, per Message-ID, the time of each copy delivered (a file's
// modification time).
func Delivered(dir string) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		id, mtime, err := messageID(f)
		if err != nil {
			return nil, err
		}
		if id != "" {
			out[id] = append(out[id], mtime)
		}
	}
	return out, nil
}

func messageID(path string) (string, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", time.Time{}, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if v, ok := cutHeader(line, "Message-ID:"); ok {
			return strings.Trim(strings.TrimSpace(v), "<>"), st.ModTime(), nil
		}
	}
	return "", st.ModTime(), sc.Err()
}

func cutHeader(line, name string) (string, bool) {
	if len(line) >= len(name) && strings.EqualFold(line[:len(name)], name) {
		return line[len(name):], true
	}
	return "", false
}
