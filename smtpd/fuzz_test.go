package smtpd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/queue"
)

// memQueue is an in-memory Enqueuer and Registry for fuzzing, where a real
// Redis would make each run too slow to explore.
type memQueue struct {
	mu   sync.Mutex
	msgs map[string]*queue.Message
	ids  []string // in the order queued
}

func (m *memQueue) Enqueue(_ context.Context, msg *queue.Message) (queue.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[msg.Record.ID] = msg
	m.ids = append(m.ids, msg.Record.ID)
	// The receiver hands small messages over in pieces; keep them whole
	// for the checks.
	if msg.Chunks != nil {
		msg.Data = bytes.Join(msg.Chunks, nil)
	}
	return queue.Result{ID: msg.Record.ID}, nil
}

func (m *memQueue) Registry(context.Context) ([]queue.RegistryEntry, error) {
	return []queue.RegistryEntry{{Pattern: "~*/*@lists.example.org"}}, nil
}

// FuzzSession feeds arbitrary client input to a whole session and checks
// that every "queued as" reply names a queued message, that every message
// queued got such a reply and has recipients, none twice, that no queued
// message carries a bare CR, bare LF or NUL or begins with a folded line,
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
	mq := &memQueue{msgs: map[string]*queue.Message{}}
	cfg := Config{Hostname: "mx.example.org", Domains: []string{"lists.example.org"},
		CommandTimeout: 2 * time.Second, DataGrace: time.Second, MaxMessageBytes: 1 << 16}
	srv, err := New(cfg, mq, NewRecipients(mq, time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(l)
	f.Cleanup(func() { srv.Close() })

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", l.Addr().String())
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
		for _, line := range strings.Split(string(out), "\r\n") {
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
			for i, r := range m.Record.Rcpts {
				for _, r2 := range m.Record.Rcpts[:i] {
					if queue.SameAddress(r.Addr, r2.Addr) {
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
