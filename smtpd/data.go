package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// Data reads the message, checks it, stamps it and queues it. It returns
// nil (go-smtp answers 250) only when the queue has acknowledged the
// message; the reply text then carries the queue id.
func (ss *session) Data(r io.Reader) error {
	start := time.Now()
	id := ss.milterQueueID(start)
	res, size, err := ss.receive(r, id)
	if errors.Is(err, errMilterDiscard) {
		return ss.milterDiscarded(id, size, start)
	}
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
	// copy queued under duplicate_of. A transaction that queued nothing
	// has its id under "id": no queue_id names a message that is not in
	// the queue.
	idKey := "queue_id"
	if err != nil {
		idKey = "id"
	}
	attrs := []any{idKey, id, "from", ss.from, "rcpts", len(ss.rcpts), "size", size,
		"code", code, "duration", time.Since(start).Round(time.Microsecond)}
	if res.Duplicate {
		attrs = append(attrs, "duplicate_of", res.ID)
	}
	if ss.milter != nil {
		attrs = append(attrs, "milters", ss.milter.summary())
		if h := ss.milter.hold; h != "" && err == nil && !res.Duplicate {
			attrs = append(attrs, "held", h)
			ss.s.metrics.milter.held.Inc()
		}
	}
	if err != nil {
		attrs = append(attrs, "err", err)
		ss.log.Warn("transaction", attrs...)
		return rep
	}
	ss.log.Info("transaction", attrs...)
	ss.wc.limits.delivered()
	return replyQueued(res.ID)
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
	defer ss.milterAbort()
	rc.milterData()
	err := rc.read(r)
	ss.wc.endData()
	switch {
	case err == nil:
	case errors.Is(err, errDataSlow):
		ss.s.metrics.dataCuts.WithLabelValues("rate").Inc()
	case errors.Is(err, errDataTimeout):
		ss.s.metrics.dataCuts.WithLabelValues("data_timeout").Inc()
	case errors.Is(err, smtp.ErrDataTooLarge):
		err = replyTooBig
	case errors.Is(err, smtp.ErrBareLineEnding):
		err = replyBareEOL
	case errors.Is(err, smtp.ErrDataLineTooLong):
		err = replyLongLine
	case errors.Is(err, smtp.ErrDataReset):
	case reply(err) == replyLocal:
		err = fmt.Errorf("%w: %v", replyDataAborted, err)
	}
	if err == nil && rc.noHeader() {
		err = replyNoHeader
	}
	if err == nil {
		err = rc.milterEnd()
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
	m := &queue.Message{Record: rec, Header: header, Chunks: rc.pending}
	if !rc.prefixed {
		// Nothing spooled: a small message, whose commit big messages'
		// batches make way for.
		ss.s.writers.small()
	}
	ss.milterMessage(m)
	t0 := time.Now()
	var res queue.Result
	err := ss.s.rideThrough(context.Background(), opEnqueue, func(ctx context.Context) error {
		var err error
		res, err = rc.spool.Commit(ctx, m)
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

// noHeader reports, at the end of the data, whether the message has no
// header field at all: no data (BDAT 0 LAST, or DATA with "." alone),
// or an empty first line. RFC 5322 §3.6 requires Date and From at
// least; list software has nothing to work with, and mxd's own fields
// would become the whole header.
func (rc *reception) noHeader() bool {
	return rc.hdrEnd <= len("\r\n")
}

// received is the Received header field (RFC 5321 §4.4) for rec, with
// the protocol keywords of RFC 3848 and RFC 6531. Its lines are folded at
// foldAt octets where the words allow, and the one word of unbounded
// length that the client chooses, the HELO name, is cut at maxHELO: no
// line exceeds RFC 5322 §2.1.1's 998 octets (the recipient is at most
// 64 + 1 + 255 octets, RFC 5321 §4.5.3.1).
func (ss *session) received(rec *queue.Record) []byte {
	proto := "SMTP"
	switch {
	case ss.utf8:
		proto = "UTF8SMTP"
	case ss.ehlo || rec.TLSVersion != "":
		// STARTTLS is an extension: a session in TLS said EHLO first.
		proto = "ESMTP"
	}
	if rec.TLSVersion != "" {
		proto += "S"
	}
	ip := rec.ClientIP
	if strings.Contains(ip, ":") {
		ip = "IPv6:" + ip
	}
	var f folder
	f.clause("Received:", "from", truncate(sanitizeHeaderValue(rec.HELO), maxHELO), "(["+ip+"])")
	if rec.TLSVersion != "" {
		f.clause("(using", rec.TLSVersion, "with", "cipher", rec.TLSCipher+")")
	}
	f.clause("by", ss.s.cfg.Hostname, "(mxd)", "with", proto, "id", rec.ID)
	if len(rec.Rcpts) == 1 {
		f.clause("for", "<"+sanitizeHeaderValue(rec.Rcpts[0].Addr)+">")
	}
	f.b.WriteString(";")
	f.clause(strings.Fields(rec.Arrived.Format(time.RFC1123Z))...)
	f.b.WriteString("\r\n")
	return []byte(f.b.String())
}

// foldAt is the line length RFC 5322 §2.1.1 asks for; maxHELO is the
// longest domain (RFC 5321 §4.5.3.1.2).
const (
	foldAt  = 78
	maxHELO = 255
)

// folder writes a header field: each clause on a line of its own, its
// words on as few lines of at most foldAt octets as they fit on.
type folder struct {
	b    strings.Builder
	line int // octets on the current line
}

func (f *folder) clause(words ...string) {
	for i, w := range words {
		switch {
		case f.b.Len() == 0:
		case i == 0 || f.line+1+len(w) > foldAt:
			f.b.WriteString("\r\n\t")
			f.line = 1
		default:
			f.b.WriteByte(' ')
			f.line++
		}
		f.b.WriteString(w)
		f.line += len(w)
	}
}

// truncate cuts s to at most n octets, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sanitizeHeaderValue keeps client-supplied text from breaking the header:
// controls and the characters that would end a comment or the clause
// become '?'; so does a byte that is not UTF-8, and white space, which
// would let a fold split the word.
func sanitizeHeaderValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == ';' || r == ' ' || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
