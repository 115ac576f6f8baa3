package smtpd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	mailaddr "mxq/address"
	"mxq/queue"
)

// memQueue is an in-memory Queue and Registry for fuzzing, where a real
// Redis would make each run too slow to explore.
type memQueue struct {
	mu      sync.Mutex
	msgs    map[string]*queue.Message // with the whole data in Data
	ids     []string                  // in the order queued
	spooled map[string]*memSpool      // the spool of each message queued
}

func newMemQueue() *memQueue {
	return &memQueue{msgs: map[string]*queue.Message{}, spooled: map[string]*memSpool{}}
}

func (m *memQueue) NewSpool(id string, _ time.Duration) Spool { return &memSpool{q: m} }

// memSpool is a message's data in memory until its commit.
type memSpool struct {
	q       *memQueue
	data    [][]byte // copies: the receiver reuses its blocks
	appends int
	tail    int // bytes that came with the commit, not appended
}

func (s *memSpool) Append(_ context.Context, chunks ...[]byte) error {
	for _, c := range chunks {
		s.data = append(s.data, bytes.Clone(c))
	}
	s.appends++
	return nil
}

func (s *memSpool) Commit(_ context.Context, msg *queue.Message) (queue.Result, error) {
	data := append(s.data[:len(s.data):len(s.data)], msg.Chunks...)
	if msg.Chunks == nil {
		data = append(data, msg.Data)
	}
	s.tail = len(bytes.Join(data[len(s.data):], nil))
	m := s.q
	m.mu.Lock()
	defer m.mu.Unlock()
	stored := *msg
	stored.Data, stored.Chunks = bytes.Join(data, nil), nil
	m.msgs[msg.Record.ID] = &stored
	m.ids = append(m.ids, msg.Record.ID)
	m.spooled[msg.Record.ID] = s
	return queue.Result{ID: msg.Record.ID}, nil
}

// Prefix is for the dedup hash, which the in-memory queue does not keep.
func (s *memSpool) Prefix([]byte) {}

func (s *memSpool) Abort(context.Context) error {
	s.data = nil
	return nil
}

func (m *memQueue) Registry(context.Context) ([]queue.RegistryEntry, error) {
	return []queue.RegistryEntry{{Pattern: "~*/*@lists.example.org"}}, nil
}

// serveMem runs a Server with cfg in front of a new memQueue, on
// loopback, and returns the queue and the server's address. d gives the
// other live objects (Metrics, TLS, Auth); the queue, the recipients and
// a logger that drops every line are serveMem's.
func serveMem(tb testing.TB, cfg Config, d Deps) (*memQueue, string) {
	tb.Helper()
	mq := newMemQueue()
	d.Queue, d.Recipients, d.Logger = mq, NewRecipients(mq, time.Hour), slog.New(slog.DiscardHandler)
	srv, err := New(cfg, d)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return mq, l.Addr().String()
}

// FuzzSession feeds arbitrary client input to a whole session and checks
// that every "queued as" reply names a queued message, that every message
// queued got such a reply and has recipients, none twice, that no queued
// message carries a bare CR, bare LF or NUL, begins with a folded line,
// has no header field, has a line over 2,000 octets or more Received
// fields than MaxReceived in any spelling, that no line of our header
// exceeds 998 octets, that no ORCPT or ENVID holds a control character,
// and that the session ends.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<~o/l@lists.example.org>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<~o/l@lists.example.org>\r\nDATA\r\nx\r\n.\rMAIL FROM:<e@f.g>\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<~o/l@lists.example.org>\r\nBDAT 5 LAST\r\nab\ncdQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.c> SMTPUTF8\r\nRCPT TO:<~ü/l@lists.example.org>\r\nDATA\r\n..dot\r\n.\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HELO a\nMAIL FROM:<>\nRCPT TO:<\"a@b\"@lists.example.org>\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// Every run is a new session from 127.0.0.1: no rate limits. The
	// error limits stay, with waits short enough for 5 s a session.
	cfg := testConfig()
	cfg.CommandTimeout, cfg.DataGrace, cfg.MaxMessageBytes = 2*time.Second, time.Second, 1<<16
	cfg.ConnectionRateLimit, cfg.MessageRateLimit, cfg.RecipientRateLimit, cfg.ErrorSleepTime = -1, -1, -1, time.Millisecond
	// Within the message limit, so that refused header sections (and
	// the memory they give back) are within the fuzzer's reach.
	cfg.MaxHeaderBytes = 4096
	mq, addr := serveMem(f, cfg, Deps{})

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mq.mu.Lock()
		before := len(mq.ids)
		mq.mu.Unlock()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			// A reset is an ending (the server may close with input
			// unread); a session still open after 5 s is not.
			t.Fatalf("session did not end within 5s; output so far: %q", out)
		}
		replied := map[string]bool{}
		lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
		checkErrorLimit(t, lines)
		for _, line := range lines {
			id, ok := strings.CutPrefix(line, "250 2.0.0 queued as ")
			if !ok {
				continue
			}
			replied[id] = true
			mq.mu.Lock()
			m := mq.msgs[id]
			mq.mu.Unlock()
			if m == nil {
				t.Fatalf("250 for %s, which is not queued", id)
			}
			if bytes.IndexByte(m.Data, 0) >= 0 || bareEOL(m.Data) {
				t.Fatalf("queued %q: bare CR, LF or NUL", m.Data)
			}
			if len(m.Data) > 0 && (m.Data[0] == ' ' || m.Data[0] == '\t') {
				t.Fatalf("queued %q: its first line would continue our Received field", m.Data)
			}
			checkQueued(t, m, cfg.MaxReceived)
			for i, r := range m.Record.Rcpts {
				for _, r2 := range m.Record.Rcpts[:i] {
					if mailaddr.SameAddress(r.Addr, r2.Addr) {
						t.Fatalf("queued %s with recipient %q twice", id, r.Addr)
					}
				}
			}
		}
		mq.mu.Lock()
		defer mq.mu.Unlock()
		for _, id := range mq.ids[before:] {
			if !replied[id] {
				t.Fatalf("queued %s (from %q to %v) without telling the client", id, mq.msgs[id].Record.From, mq.msgs[id].Record.Rcpts)
			}
			if len(mq.msgs[id].Record.Rcpts) == 0 {
				t.Fatalf("queued %s without recipients", id)
			}
		}
	})
}

// checkErrorLimit fails unless the session made at most HardErrorLimit
// errors between queued messages, and ended at its 421 4.7.0.
func checkErrorLimit(t *testing.T, lines []string) {
	t.Helper()
	errs := 0
	for i, line := range lines {
		if strings.HasPrefix(line, "250 2.0.0 queued as ") {
			errs = 0
		}
		if len(line) < 10 || line[3] != ' ' {
			continue
		}
		if line[0] == '5' || line[0] == '4' && !strings.HasPrefix(line, "421") && strings.HasPrefix(line[4:], "4.7.") {
			errs++
		}
		if errs > Defaults().HardErrorLimit {
			t.Fatalf("%d errors without a 421: %q", errs, lines)
		}
		if line == strings.TrimSuffix(replyLine(replyTooManyErrors), "\r\n") && i != len(lines)-1 {
			t.Fatalf("replies after the 421 for errors: %q", lines[i:])
		}
	}
}

// receivedName is a Received field's start, in any spelling readers
// accept (RFC 5322 §4.5).
var receivedName = regexp.MustCompile(`(?i)^received[ \t]*:`)

// checkQueued checks what FuzzSession requires of a queued message beyond
// its line endings.
func checkQueued(t *testing.T, m *queue.Message, maxReceived int) {
	t.Helper()
	if len(m.Data) == 0 || bytes.HasPrefix(m.Data, []byte("\r\n")) {
		t.Fatalf("queued %q: no header field", m.Data)
	}
	for _, l := range bytes.Split(m.Header, []byte("\r\n")) {
		if len(l) > 998 {
			t.Fatalf("our header has a line of %d octets:\n%s", len(l), m.Header)
		}
	}
	received := 0
	for _, l := range bytes.Split(m.Data, []byte("\r\n")) {
		if len(l)+2 > 2000 {
			t.Fatalf("queued a line of %d octets", len(l)+2)
		}
		if len(l) == 0 {
			break // the end of the header section
		}
		if receivedName.Match(l) {
			received++
		}
	}
	if received > maxReceived {
		t.Fatalf("queued %d Received fields, over %d", received, maxReceived)
	}
	values := []string{m.Record.FromParams["ENVID"]}
	for _, r := range m.Record.Rcpts {
		values = append(values, r.Params["ORCPT"])
	}
	for _, v := range values {
		for _, r := range v {
			if unicode.IsControl(r) || r == utf8.RuneError || unicode.In(r, unicode.Zl, unicode.Zp) {
				t.Fatalf("queued a parameter %q", v)
			}
		}
	}
}

// bareEOL reports a bare CR, a bare LF, or a last line without CRLF.
func bareEOL(b []byte) bool {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return true
	}
	for i, ch := range b {
		if ch == '\n' && (i == 0 || b[i-1] != '\r') || ch == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}
