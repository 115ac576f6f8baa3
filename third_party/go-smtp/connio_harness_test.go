package smtp

// The connection, listener, backend and client that connio_test.go
// watches the server's I/O with.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ioEvent is one thing the server did on its connection, or one call into
// the session, in order.
type ioEvent struct {
	kind string // read, write, close, deadline, session, data
	size int    // read: the size of the buffer given
	data string // read: the bytes read; write: the bytes written; session: what Conn() is
	err  error  // read: its error
}

// recConn records the server's I/O on one end of a pipe. fail, once set,
// is the error of every read from then on, as the wrapper's reads fail
// for good after a DATA timeout.
type recConn struct {
	net.Conn

	mu     sync.Mutex
	events []ioEvent
	fail   error

	busy    atomic.Int32 // reads and writes in progress
	overlap atomic.Bool  // a read or write began while another ran
}

func (c *recConn) log(e ioEvent) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func (c *recConn) snapshot() []ioEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func (c *recConn) failReads(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

func (c *recConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail
}

func (c *recConn) enter() {
	if c.busy.Add(1) != 1 {
		c.overlap.Store(true)
	}
}

func (c *recConn) Read(b []byte) (int, error) {
	c.enter()
	defer c.busy.Add(-1)
	if err := c.failure(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if fail := c.failure(); fail != nil {
		return 0, fail
	}
	c.log(ioEvent{kind: "read", size: len(b), data: string(b[:n]), err: err})
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	c.enter()
	defer c.busy.Add(-1)
	c.log(ioEvent{kind: "write", data: string(b)})
	return c.Conn.Write(b)
}

func (c *recConn) Close() error {
	c.log(ioEvent{kind: "close"})
	return c.Conn.Close()
}

func (c *recConn) SetDeadline(t time.Time) error {
	c.log(ioEvent{kind: "deadline", data: "both"})
	return c.Conn.SetDeadline(t)
}

func (c *recConn) SetReadDeadline(t time.Time) error {
	c.log(ioEvent{kind: "deadline", data: "read"})
	return c.Conn.SetReadDeadline(t)
}

func (c *recConn) SetWriteDeadline(t time.Time) error {
	c.log(ioEvent{kind: "deadline", data: "write"})
	return c.Conn.SetWriteDeadline(t)
}

// pipeListener hands the server the ends of pipes, so that one client
// write is one server read.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// ioBackend's sessions log into the recConn below the connection.
type ioBackend struct {
	hold    chan struct{} // if set, Data waits for it to close before reading
	dataErr chan error    // what Data's reader ended with
}

func (be *ioBackend) NewSession(c *Conn) (Session, error) {
	var what string
	var rc *recConn
	switch nc := c.Conn().(type) {
	case *recConn:
		what, rc = "accepted conn", nc
	case *tls.Conn:
		rc, _ = nc.NetConn().(*recConn)
		what = "TLS over the accepted conn"
	}
	if rc == nil {
		return nil, errors.New("no recConn below the connection")
	}
	rc.log(ioEvent{kind: "session", data: what})
	return &ioSession{be: be, rc: rc}, nil
}

type ioSession struct {
	be *ioBackend
	rc *recConn
}

func (s *ioSession) Reset()                          {}
func (s *ioSession) Logout() error                   { return nil }
func (s *ioSession) Mail(string, *MailOptions) error { return nil }
func (s *ioSession) Rcpt(string, *RcptOptions) error { return nil }

// Data reads the message, once the backend's hold is released, and
// reports how its reader ended.
func (s *ioSession) Data(r io.Reader) error {
	s.rc.log(ioEvent{kind: "data"})
	if s.be.hold != nil {
		<-s.be.hold
	}
	_, err := io.Copy(io.Discard, r)
	if s.be.dataErr != nil {
		s.be.dataErr <- err
	}
	if err != nil {
		return &SMTPError{Code: 451, EnhancedCode: EnhancedCode{4, 4, 2}, Message: "Data failed"}
	}
	return nil
}

// ioTest is a server on a pipeListener and its configuration.
type ioTest struct {
	t  *testing.T
	l  *pipeListener
	be *ioBackend
	s  *Server
}

func newIOTest(t *testing.T, configure func(*Server)) *ioTest {
	cert, err := tls.X509KeyPair(localhostCert, localhostKey)
	if err != nil {
		t.Fatal(err)
	}
	it := &ioTest{t: t, l: &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}, be: &ioBackend{}}
	s := NewServer(it.be)
	s.Domain = "mx.example.org"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StrictLineEndings = true
	s.ErrorLog = nopLogger{}
	if configure != nil {
		configure(s)
	}
	it.s = s
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(it.l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-served
	})
	return it
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...interface{}) {}
func (nopLogger) Println(...interface{})        {}

// dial connects a client, and reads the greeting.
func (it *ioTest) dial() (*ioClient, *recConn) {
	it.t.Helper()
	server, client := net.Pipe()
	rc := &recConn{Conn: server}
	it.l.conns <- rc
	it.t.Cleanup(func() {
		client.Close()
		if rc.overlap.Load() {
			it.t.Error("the server read and wrote on the connection at the same time")
		}
	})
	client.SetDeadline(time.Now().Add(10 * time.Second))
	c := &ioClient{t: it.t, c: client, r: bufio.NewReader(client)}
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		it.t.Fatalf("greeting %q", got)
	}
	return c, rc
}

type ioClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (c *ioClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one reply, all its lines.
func (c *ioClient) reply() string {
	c.t.Helper()
	var all string
	for {
		line, err := c.r.ReadString('\n')
		all += line
		if err != nil {
			c.t.Fatalf("reply so far %q: %v", all, err)
		}
		if len(line) < 4 || line[3] != '-' {
			return all
		}
	}
}

func (c *ioClient) expect(cmd, code string) {
	c.t.Helper()
	if cmd != "" {
		c.send(cmd + "\r\n")
	}
	if got := c.reply(); !strings.HasPrefix(got, code) {
		c.t.Fatalf("%s: %q, want %s", cmd, got, code)
	}
}

// closed waits for the server to close the connection, and returns the
// events.
func closed(t *testing.T, rc *recConn) []ioEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := rc.snapshot()
		if slices.ContainsFunc(ev, func(e ioEvent) bool { return e.kind == "close" }) {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never closed the connection: %v", ev)
		}
		time.Sleep(time.Millisecond)
	}
}

// kinds is the events' kinds, with the first line of each write.
func kinds(ev []ioEvent) []string {
	var out []string
	for _, e := range ev {
		switch e.kind {
		case "write":
			out = append(out, "write "+strings.SplitN(e.data, " ", 2)[0])
		default:
			out = append(out, e.kind)
		}
	}
	return out
}
