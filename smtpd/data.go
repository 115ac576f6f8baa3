package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
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
	// queue_id is this transaction's own id, the one in its Received
	// field, also when the message turned out to be a duplicate of the
	// copy queued under duplicate_of.
	attrs := []any{"queue_id", id, "from", ss.from, "rcpts", len(ss.rcpts), "size", size,
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
// reply. The data goes to the queue while it arrives (see reception);
// whatever is refused, or fails, leaves nothing behind.
func (ss *session) receive(r io.Reader, id string) (queue.Result, int64, error) {
	ss.wc.beginData()
	defer ss.wc.setTx(false)
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.DataTimeout+ss.s.cfg.EnqueueTimeout)
	defer cancel()
	rc := ss.newReception(ctx, id)
	err := rc.read(r)
	ss.wc.endData()
	switch {
	case err == nil:
	case errors.Is(err, errDataTimeout):
	case errors.Is(err, smtp.ErrDataTooLarge):
		err = replyTooBig
	case errors.Is(err, smtp.ErrBareLineEnding):
		err = replyBareEOL
	case errors.Is(err, smtp.ErrDataReset):
	case reply(err) == replyLocal:
		err = fmt.Errorf("%w: %v", replyDataAborted, err)
	}
	if err != nil {
		if rc.auth != nil {
			rc.auth.Abort()
		}
		rc.discard()
		return queue.Result{}, rc.size, err
	}
	res, err := ss.commit(rc)
	if err != nil {
		rc.discard()
		return res, rc.size, err
	}
	rc.finish()
	return res, rc.size, nil
}

// commit stamps the received message and queues it.
func (ss *session) commit(rc *reception) (queue.Result, error) {
	rec := &queue.Record{
		ID:         rc.id,
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
	if rc.auth != nil {
		res, err := ss.authVerdict(rc.auth)
		if err != nil {
			return queue.Result{}, err
		}
		rec.Auth = res.Record
		header = append(header, res.Header...)
	}
	m := &queue.Message{Record: rec, Header: header, Spool: rc.spool, Chunks: rc.pending}
	t0 := time.Now()
	var res queue.Result
	err := ss.s.rideThrough(context.Background(), opEnqueue, func(ctx context.Context) error {
		var err error
		res, err = ss.s.queue.Enqueue(ctx, m)
		return err
	})
	if err != nil {
		return res, err
	}
	ss.s.metrics.enqueue.Observe(time.Since(t0).Seconds())
	ss.s.metrics.bytes.Add(float64(rc.size))
	ss.s.lastEnq.Store(time.Now().UnixNano())
	return res, nil
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
