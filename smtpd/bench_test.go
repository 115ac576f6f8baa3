package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// discardQueue accepts every message and keeps none, so the benchmark
// measures the receiver and not Redis.
type discardQueue struct{}

func (discardQueue) NewSpool(string, time.Duration) Spool { return discardSpool{} }

type discardSpool struct{}

func (discardSpool) Append(context.Context, ...[]byte) error { return nil }
func (discardSpool) Abort(context.Context) error             { return nil }
func (discardSpool) Prefix([]byte)                           {}
func (discardSpool) Commit(_ context.Context, m *queue.Message) (queue.Result, error) {
	return queue.Result{ID: m.Record.ID}, nil
}

func (discardQueue) Registry(context.Context) ([]queue.RegistryEntry, error) {
	return []queue.RegistryEntry{{Pattern: "~*/*@lists.example.org"}}, nil
}

// sinkBackend is a bare go-smtp server that reads each message and throws
// it away: the reference the receiver's cost is compared with.
type sinkBackend struct{}

func (sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{}, nil }

type sinkSession struct{}

func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (sinkSession) Reset()        {}
func (sinkSession) Logout() error { return nil }

// BenchmarkReceive sends b.N messages of 10 KiB over 8 pipelining sessions,
// each as its own transaction, to the receiver with an in-memory queue
// ("mxd": everything but Redis and DNS) and to a bare go-smtp server that
// discards the data ("go-smtp"): the ratio of their ns/op is what the
// receiver adds to the protocol.
func BenchmarkReceive(b *testing.B) {
	body := benchMessage(10 << 10)
	b.Run("mxd", func(b *testing.B) {
		cfg := testConfig()
		cfg.MaxConnectionsPerIP = 1000 // all load from 127.0.0.1
		cfg.ConnectionRateLimit, cfg.MessageRateLimit, cfg.RecipientRateLimit = -1, -1, -1
		srv, err := New(cfg, Deps{Queue: discardQueue{}, Recipients: NewRecipients(discardQueue{}, time.Hour),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		runReceive(b, func(l net.Listener) { srv.Serve(l) }, func() { srv.Close() }, body)
	})
	b.Run("go-smtp", func(b *testing.B) {
		s := smtp.NewServer(sinkBackend{})
		s.Domain = "sink.example.org"
		s.MaxMessageBytes = 64 << 20
		runReceive(b, func(l net.Listener) { s.Serve(l) }, func() { s.Close() }, body)
	})
}

func benchMessage(size int) string {
	var sb strings.Builder
	sb.WriteString("From: <bench@example.com>\r\nTo: <~alice/dev@lists.example.org>\r\nSubject: bench\r\nMessage-ID: <bench@example.com>\r\n\r\n")
	line := strings.Repeat("x", 74) + "\r\n"
	for sb.Len() < size {
		sb.WriteString(line)
	}
	return sb.String()
}

func runReceive(b *testing.B, serve func(net.Listener), stop func(), body string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go serve(l)
	defer stop()
	const sessions = 8
	var left atomic.Int64
	left.Store(int64(b.N))
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range sessions {
		wg.Go(func() { errs <- benchSession(l.Addr().String(), body, &left) })
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchSession sends messages until left runs out: MAIL, RCPT and DATA
// in one write (PIPELINING), then the data, as a sending MTA does.
func benchSession(addr, body string, left *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	reply := func(want string) error {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if len(line) < 4 || line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, want) {
				return fmt.Errorf("got %q, want %s", line, want)
			}
			return nil
		}
	}
	if err := reply("220"); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "EHLO client.example.com\r\n"); err != nil {
		return err
	}
	if err := reply("250"); err != nil {
		return err
	}
	head := []byte("MAIL FROM:<bench@example.com>\r\nRCPT TO:<~alice/dev@lists.example.org>\r\nDATA\r\n")
	data := []byte(body + ".\r\n")
	for left.Add(-1) >= 0 {
		if _, err := c.Write(head); err != nil {
			return err
		}
		for _, want := range []string{"250", "250", "354"} {
			if err := reply(want); err != nil {
				return err
			}
		}
		if _, err := c.Write(data); err != nil {
			return err
		}
		if err := reply("250"); err != nil {
			return err
		}
	}
	return nil
}
