package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A reply is one SMTP reply (RFC 5321 §4.2), multi-line replies joined.
type reply struct {
	code int
	text string
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.text) }

// A client is one SMTP session. It speaks just enough SMTP to send test
// messages fast: EHLO, PIPELINING (RFC 2920), SIZE (RFC 1870).
type client struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration // per reply, and per stall of a write
	// dataTimeout bounds the wait for the reply to the end of the data;
	// timeout when zero.
	dataTimeout time.Duration
	ext         map[string]string // EHLO keywords, upper case, to their parameters
	start       time.Time         // when the connection was begun
	// tls is the handshake's outcome after STARTTLS; nil in plaintext.
	tls *tls.ConnectionState
}

func (c *client) hello(helo string) error {
	greet, err := c.readReply()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if greet.code != 220 {
		return &replyError{stage: "greeting", r: greet}
	}
	return c.ehlo(helo)
}

// ehlo says EHLO and records the extensions offered, or HELO if EHLO is
// refused.
func (c *client) ehlo(helo string) error {
	ehlo, err := c.cmd("EHLO " + helo)
	if err != nil {
		return fmt.Errorf("ehlo: %w", err)
	}
	if ehlo.code == 250 {
		lines := strings.Split(ehlo.text, "\n")
		for _, l := range lines[1:] {
			kw, param, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(kw)] = param
		}
		return nil
	}
	if ehlo.code == 421 {
		return &replyError{stage: "ehlo", r: ehlo}
	}
	h, err := c.cmd("HELO " + helo)
	if err != nil {
		return fmt.Errorf("helo: %w", err)
	}
	if h.code != 250 {
		return &replyError{stage: "helo", r: h}
	}
	return nil
}

// A replyError is an unexpected reply that ends what the client was doing.
type replyError struct {
	stage string
	r     reply
}

func (e *replyError) Error() string { return e.stage + ": " + e.r.String() }

// cmd sends one command and reads its reply.
func (c *client) cmd(line string) (reply, error) {
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.flush(); err != nil {
		return reply{}, err
	}
	return c.readReply()
}

func (c *client) flush() error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.w.Flush()
}

// readReply reads one reply, all of its lines, waiting up to c.timeout.
func (c *client) readReply() (reply, error) { return c.readReplyWithin(c.timeout) }

// readReplyWithin reads one reply, all of its lines, waiting up to d.
func (c *client) readReplyWithin(d time.Duration) (reply, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var r reply
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return reply{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return reply{}, fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 {
			return reply{}, fmt.Errorf("malformed reply %q", line)
		}
		if r.code != 0 && code != r.code {
			return reply{}, fmt.Errorf("reply code changed within a reply: %q", line)
		}
		r.code = code
		more := len(line) > 3 && line[3] == '-'
		if len(line) > 4 {
			text = append(text, line[4:])
		} else {
			text = append(text, "")
		}
		if !more {
			r.text = strings.Join(text, "\n")
			return r, nil
		}
	}
}

// A txResult is how one mail transaction ended.
type txResult struct {
	stage   string // "data-end" if the message was sent, else where it stopped
	code    int
	latency time.Duration // from the end of the data to its reply; data-end only
	closed  bool          // the server closed the session (421)
}

// send runs one mail transaction. msg is the dot-stuffed message with its
// terminating ".\r\n", in parts that are sent one after the other; size is
// its size before stuffing, for SIZE=. An error means the session is
// unusable; a refusal is a txResult.
func (c *client) send(from string, rcpts []string, msg [][]byte, size int) (txResult, error) {
	mail := "MAIL FROM:<" + from + ">"
	if _, ok := c.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.Itoa(size)
	}
	if _, ok := c.ext["PIPELINING"]; ok {
		return c.sendPipelined(mail, rcpts, msg)
	}
	return c.sendLockstep(mail, rcpts, msg)
}

// sendPipelined sends MAIL, every RCPT and DATA in one write (RFC 2920
// §3.1: DATA is the last command of a group), then reads their replies.
func (c *client) sendPipelined(mail string, rcpts []string, msg [][]byte) (txResult, error) {
	c.w.WriteString(mail)
	c.w.WriteString("\r\n")
	for _, r := range rcpts {
		c.w.WriteString("RCPT TO:<")
		c.w.WriteString(r)
		c.w.WriteString(">\r\n")
	}
	c.w.WriteString("DATA\r\n")
	if err := c.flush(); err != nil {
		return txResult{}, err
	}
	var fail *txResult
	note := func(stage string, r reply) {
		if fail == nil {
			fail = &txResult{stage: stage, code: r.code, closed: r.code == 421}
		}
	}
	mr, err := c.readReply()
	if err != nil {
		return txResult{}, fmt.Errorf("mail: %w", err)
	}
	if mr.code != 250 {
		note("mail", mr)
	}
	accepted := 0
	for range rcpts {
		rr, err := c.readReply()
		if err != nil {
			return txResult{}, fmt.Errorf("rcpt: %w", err)
		}
		if rr.code/100 == 2 {
			accepted++
		} else {
			note("rcpt", rr)
		}
	}
	dr, err := c.readReply()
	if err != nil {
		return txResult{}, fmt.Errorf("data: %w", err)
	}
	if dr.code != 354 {
		note("data", dr)
		return c.reset(*fail)
	}
	if accepted == 0 {
		// 354 although no recipient was accepted: RFC 2920 §3.1 has the
		// client send the terminator alone.
		c.w.WriteString(".\r\n")
		if err := c.flush(); err != nil {
			return txResult{}, err
		}
		if _, err := c.readReply(); err != nil {
			return txResult{}, err
		}
		return c.reset(*fail)
	}
	return c.data(msg)
}

// sendLockstep is send for a server without PIPELINING.
func (c *client) sendLockstep(mail string, rcpts []string, msg [][]byte) (txResult, error) {
	r, err := c.cmd(mail)
	if err != nil {
		return txResult{}, fmt.Errorf("mail: %w", err)
	}
	if r.code != 250 {
		return c.reset(txResult{stage: "mail", code: r.code, closed: r.code == 421})
	}
	var fail *txResult
	accepted := 0
	for _, rcpt := range rcpts {
		r, err := c.cmd("RCPT TO:<" + rcpt + ">")
		if err != nil {
			return txResult{}, fmt.Errorf("rcpt: %w", err)
		}
		if r.code/100 == 2 {
			accepted++
		} else if fail == nil {
			fail = &txResult{stage: "rcpt", code: r.code, closed: r.code == 421}
		}
	}
	if accepted == 0 {
		return c.reset(*fail)
	}
	r, err = c.cmd("DATA")
	if err != nil {
		return txResult{}, fmt.Errorf("data: %w", err)
	}
	if r.code != 354 {
		return c.reset(txResult{stage: "data", code: r.code, closed: r.code == 421})
	}
	return c.data(msg)
}

// writeChunk is how much of the data is written under one write deadline.
const writeChunk = 256 << 10

// data sends the message and times its reply: the clock starts once the
// final CRLF.CRLF is handed to the kernel, and stops when the reply is read.
//
// c.timeout bounds each stall of the write, not the whole message: a server
// that reads a big message slowly (back-pressure) is still reading. The
// reply gets c.dataTimeout, which RFC 5321 §4.5.3.2.6 puts at 10 minutes.
func (c *client) data(msg [][]byte) (txResult, error) {
	for _, p := range msg {
		for len(p) > 0 {
			n := min(len(p), writeChunk)
			c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
			if _, err := c.w.Write(p[:n]); err != nil {
				return txResult{}, fmt.Errorf("data: %w", err)
			}
			p = p[n:]
		}
	}
	if err := c.flush(); err != nil {
		return txResult{}, fmt.Errorf("data: %w", err)
	}
	start := time.Now()
	wait := c.dataTimeout
	if wait <= 0 {
		wait = c.timeout
	}
	r, err := c.readReplyWithin(wait)
	if err != nil {
		return txResult{}, fmt.Errorf("end of data: %w", err)
	}
	return txResult{stage: "data-end", code: r.code, latency: time.Since(start), closed: r.code == 421}, nil
}

// reset ends a refused transaction with RSET, unless the server closed.
func (c *client) reset(res txResult) (txResult, error) {
	if res.closed {
		return res, nil
	}
	r, err := c.cmd("RSET")
	if err != nil {
		return res, fmt.Errorf("rset: %w", err)
	}
	if r.code == 421 {
		res.closed = true
	}
	return res, nil
}

// quit ends the session politely and closes it. ok is whether the server
// answered 221.
func (c *client) quit() (ok bool) {
	r, err := c.cmd("QUIT")
	c.conn.Close()
	return err == nil && r.code == 221
}

// errClass names an error for the reply-code table.
func errClass(err error) string {
	var re *replyError
	var ne net.Error
	var te *tlsError
	switch {
	case errors.Is(err, errNoStartTLS):
		return "starttls not-offered"
	case errors.As(err, &re):
		return fmt.Sprintf("%s %d", re.stage, re.r.code)
	case errors.As(err, &ne) && ne.Timeout():
		return "error timeout"
	case errors.As(err, &te):
		return "error tls"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "error eof"
	case errors.Is(err, net.ErrClosed):
		return "error closed"
	default:
		var oe *net.OpError
		if errors.As(err, &oe) {
			return "error " + oe.Op
		}
		return "error io"
	}
}
