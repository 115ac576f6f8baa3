package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// Data reads the message, checks it, stamps it and queues it. It returns
// nil (go-smtp answers 250) only when the queue has acknowledged the
// message; the reply text then carries the queue id.
func (ss *session) Data(r io.Reader) error {
	start := time.Now()
	id := queue.NewID(start)
	res, size, err := ss.receive(r, id)
	if errors.Is(err, smtp.ErrDataReset) {
		// RSET, STARTTLS or a lost connection ended a BDAT transfer.
		// The client gets no reply to it, so none is logged.
		ss.log.Info("transaction aborted", "from", ss.from, "rcpts", len(ss.rcpts), "size", size, "err", err)
		return err
	}
	rep := reply(err)
	code := 250
	if err != nil {
		code = rep.Code
	}
	ss.s.metrics.transactions.WithLabelValues(fmt.Sprint(code)).Inc()
	attrs := []any{"queue_id", res.ID, "from", ss.from, "rcpts", len(ss.rcpts), "size", size,
		"code", code, "duration", time.Since(start).Round(time.Microsecond)}
	if res.Duplicate {
		attrs = append(attrs, "duplicate_of", res.ID)
	}
	if err != nil {
		attrs = append(attrs, "err", err)
		ss.log.Warn("transaction", attrs...)
		return rep
	}
	ss.log.Info("transaction", attrs...)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + res.ID}
}

// receive does the work of Data; every error it returns goes through
// reply.
func (ss *session) receive(r io.Reader, id string) (queue.Result, int, error) {
	ss.wc.beginData()
	sizeHint, _ := strconv.ParseInt(ss.fromParams["SIZE"], 10, 64)
	bp := msgBufs.Get().(*[]byte)
	// The queue has written the message to Redis when Enqueue returns,
	// and nothing else keeps it.
	defer releaseMsg(bp)
	data, err := readData(r, bp, sizeHint)
	ss.wc.endData()
	defer ss.wc.setTx(false)
	switch {
	case errors.Is(err, errDataTimeout):
		return queue.Result{}, len(data), err
	case errors.Is(err, smtp.ErrDataTooLarge):
		return queue.Result{}, len(data), replyTooBig
	case errors.Is(err, smtp.ErrBareLineEnding):
		return queue.Result{}, len(data), replyBareEOL
	case errors.Is(err, smtp.ErrDataReset):
		return queue.Result{}, len(data), err
	case err != nil:
		return queue.Result{}, len(data), fmt.Errorf("%w: %v", replyDataAborted, err)
	}
	if foldedStart(data) {
		return queue.Result{}, len(data), replyFoldedStart
	}
	size, received := headerSection(data)
	if size > ss.s.cfg.MaxHeaderBytes {
		return queue.Result{}, len(data), replyHeaderTooBig
	}
	if received > ss.s.cfg.MaxReceived {
		return queue.Result{}, len(data), replyLoop
	}
	rec := &queue.Record{
		ID:         id,
		Host:       ss.s.cfg.Hostname,
		From:       ss.from,
		FromParams: ss.fromParams,
		Rcpts:      ss.rcpts,
		ClientIP:   ss.remote,
		HELO:       ss.c.Hostname(),
		Arrived:    time.Now().UTC(),
	}
	if st, ok := ss.c.TLSConnectionState(); ok {
		rec.TLSVersion = tls.VersionName(st.Version)
		rec.TLSCipher = tls.CipherSuiteName(st.CipherSuite)
	}
	header := ss.received(rec)
	if auth := ss.s.cfg.Auth; auth != nil {
		res, err := ss.authenticate(auth, data)
		if err != nil {
			return queue.Result{}, len(data), err
		}
		rec.Auth = res.Record
		header = append(header, res.Header...)
		data = res.Data
		if foldedStart(data) { // nor may a removed field leave one
			return queue.Result{}, len(data), replyFoldedStart
		}
	}
	m := &queue.Message{Record: rec, Header: header, Data: data}
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.EnqueueTimeout)
	defer cancel()
	t0 := time.Now()
	res, err := ss.s.queue.Enqueue(ctx, m)
	if err != nil {
		return res, len(data), err
	}
	ss.s.metrics.enqueue.Observe(time.Since(t0).Seconds())
	ss.s.metrics.bytes.Add(float64(len(data)))
	ss.s.lastEnq.Store(time.Now().UnixNano())
	return res, len(data), nil
}

// msgBufs holds message buffers between transactions, so that a busy
// receiver reads each message into memory it already has. A buffer that
// grew past maxPooledMsg goes to the garbage collector instead: one large
// message must not pin its size for good.
var msgBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledMsg = 1 << 20

func releaseMsg(bp *[]byte) {
	if cap(*bp) <= maxPooledMsg {
		*bp = (*bp)[:0]
		msgBufs.Put(bp)
	}
}

// readData reads the message to its end into *bp, straight from r into
// the buffer's free space. go-smtp judges the line endings on the wire
// (Server.StrictLineEndings): a message with a bare CR, a bare LF or a
// NUL (RFC 5321 §2.3.8) is read to its real end and then ends with
// smtp.ErrBareLineEnding instead of io.EOF, so that the refusal comes
// after the end of data.
func readData(r io.Reader, bp *[]byte, sizeHint int64) ([]byte, error) {
	buf := slices.Grow((*bp)[:0], int(min(max(sizeHint, 16<<10), 1<<20))+512)
	defer func() { *bp = buf[:0] }()
	for {
		if cap(buf)-len(buf) < 4<<10 {
			buf = slices.Grow(buf, max(32<<10, cap(buf)/2))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// foldedStart reports whether msg begins with a space or a tab. Such a
// first line is the continuation of a folded field (RFC 5322 §2.2.3), and
// the fields mxd prepends (RFC 5321 §4.4) would take it as part of their
// own last one: "\t; dkim=pass" would join our Authentication-Results.
func foldedStart(msg []byte) bool {
	return len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t')
}

// headerSection walks the header section once (up to the first empty
// line, or the whole message without one) and returns its length without
// the final CRLF, and how many Received fields it has.
func headerSection(msg []byte) (size, received int) {
	pos := 0
	for pos < len(msg) {
		line := msg[pos:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return max(pos-2, 0), received // the empty line ends it
		}
		if len(line) >= 9 && strings.EqualFold(string(line[:9]), "received:") {
			received++
		}
		pos += len(line)
	}
	return len(msg), received
}

// received is the Received header field (RFC 5321 §4.4) for rec, with
// the protocol keywords of RFC 3848 and RFC 6531.
func (ss *session) received(rec *queue.Record) []byte {
	proto := "ESMTP"
	if ss.utf8 {
		proto = "UTF8SMTP"
	}
	tlsInfo := ""
	if rec.TLSVersion != "" {
		proto += "S"
		tlsInfo = fmt.Sprintf("\r\n\t(using %s with cipher %s)", rec.TLSVersion, rec.TLSCipher)
	}
	ip := rec.ClientIP
	if strings.Contains(ip, ":") {
		ip = "IPv6:" + ip
	}
	helo := sanitizeHeaderValue(rec.HELO)
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])%s\r\n\tby %s (mxd) with %s id %s",
		helo, ip, tlsInfo, ss.s.cfg.Hostname, proto, rec.ID)
	if len(rec.Rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitizeHeaderValue(rec.Rcpts[0].Addr))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", rec.Arrived.Format(time.RFC1123Z))
	return []byte(b.String())
}

// sanitizeHeaderValue keeps client-supplied text from breaking the header.
func sanitizeHeaderValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '?'
		}
		return r
	}, s)
}
