package lists

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// DefaultDestinationTimeout bounds an LMTP or SMTP command and its data,
// or a program's run, when the destination's Timeout is zero.
const DefaultDestinationTimeout = 5 * time.Minute

// LMTP delivers over LMTP (RFC 2033) to a unix socket ("unix:/path") or a
// TCP address ("host:port"): lists.sr.ht, Mailman, Dovecot. Each recipient
// gets its own reply after the data: a 4xx is retried, a 5xx rejects that
// recipient only.
type LMTP struct {
	Addr string
	// LocalName is sent in LHLO. Default "localhost".
	LocalName string
	// Timeout bounds each command and the data. Default DefaultDestinationTimeout.
	Timeout time.Duration
}

func (l *LMTP) String() string { return "lmtp " + l.Addr }

// Deliver delivers to one recipient.
func (l *LMTP) Deliver(ctx context.Context, m *Message, rcpt string) error {
	return l.DeliverBatch(ctx, m, []string{rcpt})[0]
}

// DeliverBatch delivers to rcpts in one transaction.
func (l *LMTP) DeliverBatch(ctx context.Context, m *Message, rcpts []string) []error {
	return transact(ctx, true, l.Addr, l.LocalName, l.Timeout, m, rcpts)
}

// SMTP relays through an SMTP server at "host:port" (no TLS: a relay on
// this host or an internal network). A 5xx to a RCPT rejects that
// recipient; a reply to the data applies to every accepted recipient.
type SMTP struct {
	Addr string
	// LocalName is sent in EHLO. Default "localhost".
	LocalName string
	// Timeout bounds each command and the data. Default DefaultDestinationTimeout.
	Timeout time.Duration
}

func (s *SMTP) String() string { return "smtp " + s.Addr }

// Deliver delivers to one recipient.
func (s *SMTP) Deliver(ctx context.Context, m *Message, rcpt string) error {
	return s.DeliverBatch(ctx, m, []string{rcpt})[0]
}

// DeliverBatch delivers to rcpts in one transaction.
func (s *SMTP) DeliverBatch(ctx context.Context, m *Message, rcpts []string) []error {
	return transact(ctx, false, s.Addr, s.LocalName, s.Timeout, m, rcpts)
}

// dial connects to "unix:/path" or "host:port".
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return d.DialContext(ctx, "unix", p)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// open connects, greets and sends MAIL FROM, with the parameters of the
// original transaction that the server supports. Closing the client, or
// the end of ctx, closes the connection.
func open(ctx context.Context, lmtp bool, addr, name string, timeout time.Duration, m *Message) (*smtp.Client, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return nil, Temporary(fmt.Errorf("connect: %w", err))
	}
	// The context bounds the whole transaction: closing the connection
	// ends any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var c *smtp.Client
	if lmtp {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	fail := func(err error) (*smtp.Client, error) {
		stop()
		c.Close()
		return nil, err
	}
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	if err := c.Hello(name); err != nil {
		return fail(smtpError("greeting", err))
	}
	opts := &smtp.MailOptions{Size: int64(m.Size())}
	params := m.Record.FromParams
	if ok, _ := c.Extension("8BITMIME"); ok && strings.EqualFold(params["BODY"], "8BITMIME") {
		opts.Body = smtp.Body8BitMIME
	}
	if ok, _ := c.Extension("SMTPUTF8"); ok {
		if _, utf8 := params["SMTPUTF8"]; utf8 {
			opts.UTF8 = true
		}
	}
	if ok, _ := c.Extension("SIZE"); !ok {
		opts.Size = 0
	}
	if err := c.Mail(m.Record.From, opts); err != nil {
		return fail(smtpError("MAIL FROM", err))
	}
	return c, nil
}

// transact runs one LMTP or SMTP transaction and returns one error per
// recipient. The body is copied from the queue to the connection as it
// is read, 32 KiB at a time; when reading it fails in the middle, the
// connection is closed without the end-of-data mark and every recipient
// gets a temporary error.
func transact(ctx context.Context, lmtp bool, addr, name string, timeout time.Duration, m *Message, rcpts []string) []error {
	errs := make([]error, len(rcpts))
	all := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if name == "" {
		name = "localhost"
	}
	if timeout <= 0 {
		timeout = DefaultDestinationTimeout
	}
	c, err := open(ctx, lmtp, addr, name, timeout, m)
	if err != nil {
		return all(err)
	}
	defer c.Close()
	var accepted []int
	for i, rc := range rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			errs[i] = smtpError("RCPT TO", err)
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return all(errs[i])
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return errs
	}
	w, err := c.Data()
	if err != nil {
		return all(smtpError("DATA", err))
	}
	if err := sendBody(w, m.Body()); err != nil {
		// The server takes the data for a message only at the end-of-data
		// mark (RFC 5321 §4.1.1.4, RFC 2033 §4.2): closing the connection
		// without it, before anything else is written, makes it drop what
		// it got, so a body cut short by the queue is never delivered.
		c.Close()
		return all(Temporary(err))
	}
	if !lmtp {
		if err := w.Close(); err != nil {
			return all(smtpError("end of data", err))
		}
		c.Quit()
		return errs
	}
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		// Per-recipient replies (RFC 2033 §4.2); a recipient with neither
		// a 250 nor an error reply was cut off by a broken connection.
		var perRcpt smtp.LMTPDataError
		errors.As(err, &perRcpt)
		for _, i := range accepted {
			if _, ok := resp[rcpts[i]]; ok {
				continue
			}
			if se, ok := perRcpt[rcpts[i]]; ok {
				errs[i] = smtpError("end of data", se)
				continue
			}
			errs[i] = Temporary(fmt.Errorf("end of data: %w", err))
		}
	}
	c.Quit()
	return errs
}

// sendBody copies the message to the data writer as it is read from the
// queue, and says which side failed.
func sendBody(w io.Writer, body io.Reader) error {
	r := &readErr{r: body}
	if _, err := io.Copy(w, r); err != nil {
		if r.err != nil {
			return fmt.Errorf("read the message: %w", r.err)
		}
		return fmt.Errorf("send data: %w", err)
	}
	return nil
}

// readErr remembers the error of its reader.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
