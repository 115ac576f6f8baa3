package liststest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// MTA is an LMTP or SMTP server run by a test on a loopback port. The
// reply function (SetReply) decides the answer to each recipient: at the
// end of data for LMTP, at RCPT for SMTP. It may block, to hold a
// delivery in flight.
type MTA struct {
	mu    sync.Mutex
	reply func(rcpt string) error
	got   map[string]int // recipient → messages accepted for it
	data  [][]byte
	Addr  string
	lmtp  bool
}

func StartMTA(t testing.TB, lmtp bool) *MTA {
	t.Helper()
	m := &MTA{got: map[string]int{}, lmtp: lmtp}
	s := smtp.NewServer(m)
	s.LMTP = lmtp
	s.Domain = "MTA.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return m
}

func (m *MTA) SetReply(f func(rcpt string) error) { m.mu.Lock(); m.reply = f; m.mu.Unlock() }

func (m *MTA) Count(rcpt string) int { m.mu.Lock(); defer m.mu.Unlock(); return m.got[rcpt] }

// Messages returns the data of every message accepted so far (for LMTP,
// once per recipient that accepted it), in the order they arrived. A
// transaction that did not end with the end-of-data mark is not among
// them: go-smtp reports it to Data as an error.
func (m *MTA) Messages() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.data...)
}

func (m *MTA) answer(rcpt string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reply == nil {
		return nil
	}
	return m.reply(rcpt)
}

func (m *MTA) NewSession(c *smtp.Conn) (smtp.Session, error) { return &mtaSession{m: m}, nil }

type mtaSession struct {
	m     *MTA
	rcpts []string
}

func (s *mtaSession) Reset()        { s.rcpts = nil }
func (s *mtaSession) Logout() error { return nil }
func (s *mtaSession) Mail(from string, opts *smtp.MailOptions) error {
	return nil
}

func (s *mtaSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !s.m.isLMTP() {
		if err := s.m.answer(to); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (m *MTA) isLMTP() bool { return m.lmtp }

func (s *mtaSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.data = append(s.m.data, b)
	for _, rc := range s.rcpts {
		s.m.got[rc]++
	}
	return nil
}

func (s *mtaSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, rc := range s.rcpts {
		err := s.m.answer(rc)
		if err == nil {
			s.m.mu.Lock()
			s.m.got[rc]++
			s.m.data = append(s.m.data, b)
			s.m.mu.Unlock()
		}
		status.SetStatus(rc, err)
	}
	return nil
}
