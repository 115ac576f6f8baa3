// Package smtptest is a raw SMTP client for tests of mxq's receiver: it
// writes exactly the bytes it is given and returns each reply as the
// server sent it. A test sees what a real client would, and can send what
// no client library would: pipelined commands in one write, bare line
// endings, a message cut in the middle.
package smtptest

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// timeout bounds each read and write: a server that stops answering
// fails the test instead of hanging it.
const timeout = 10 * time.Second

// Client is one SMTP session. Its methods fail the test on a write error;
// read errors show in the reply Read returns.
type Client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to addr and returns the session and the server's
// greeting. The connection is closed when the test ends.
func Dial(t testing.TB, addr string) (*Client, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := New(t, conn)
	return c, c.Read()
}

// New returns a session on conn, whose greeting is not read yet: a test
// that must write first (a PROXY header) reads it itself.
func New(t testing.TB, conn net.Conn) *Client {
	return &Client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// Conn is the session's connection, for a test that cuts it.
func (c *Client) Conn() net.Conn { return c.conn }

// Read returns one reply, its lines joined by "\n" without their CRLF;
// "" when the server closed the connection, "ERR " and the error after
// another failure (a timeout).
func (c *Client) Read() string {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if err == io.EOF || len(lines) > 0 {
				return strings.Join(lines, "\n")
			}
			return "ERR " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		// RFC 5321 §4.2.1: "250-" continues a reply, "250 " ends it.
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// Send writes s as it is.
func (c *Client) Send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// Cmd sends line and CRLF, and returns the reply.
func (c *Client) Cmd(line string) string {
	c.t.Helper()
	c.Send(line + "\r\n")
	return c.Read()
}

// Expect sends line and CRLF, and fails the test unless the reply starts
// with prefix. It returns the reply.
func (c *Client) Expect(line, prefix string) string {
	c.t.Helper()
	got := c.Cmd(line)
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%q: got %q, want %q…", line, got, prefix)
	}
	return got
}

// SendMail runs one transaction, expecting MAIL and RCPT to be accepted
// and DATA to answer 354; body ends in CRLF and gets the final dot. It
// returns the reply to the message.
func (c *Client) SendMail(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.Expect("MAIL FROM:<"+from+">", "250")
	for _, r := range rcpts {
		c.Expect("RCPT TO:<"+r+">", "250")
	}
	c.Expect("DATA", "354")
	c.Send(body + ".\r\n")
	return c.Read()
}

// StartTLS sends STARTTLS, and extra in the same write (bytes a client
// pipelines after it, which the server must drop), expects 220, and
// continues the session in TLS with cfg.
func (c *Client) StartTLS(cfg *tls.Config, extra string) tls.ConnectionState {
	c.t.Helper()
	c.Send("STARTTLS\r\n" + extra)
	if got := c.Read(); !strings.HasPrefix(got, "220") {
		c.t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	return tc.ConnectionState()
}
