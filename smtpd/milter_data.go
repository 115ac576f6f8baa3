package smtpd

import (
	"bytes"
	"errors"
	"time"

	"mxq/queue"
	"mxq/smtpd/milter"
)

// errMilterDiscard ends a transaction a milter discarded: it is answered
// as if queued, and nothing is queued.
var errMilterDiscard = errors.New("discarded by a milter")

// milterData sends the start of the data to the milters.
func (rc *reception) milterData() {
	tx := rc.ss.milter
	if tx == nil {
		return
	}
	for _, run := range tx.runs {
		if run.s == nil {
			continue
		}
		t0 := time.Now()
		v, err := run.s.Data()
		if r := rc.ss.milterJudge(run, "data", t0, v, err); r != nil {
			rc.refuse(r)
		}
	}
}

// keepsHeader reports whether the header section is kept out of the
// spool: milters may change it at the end of data.
func (rc *reception) keepsHeader() bool { return rc.ss.milter != nil }

// milterHeader keeps the header section (as mxd stores it: forged
// Authentication-Results removed) and sends its fields to the milters.
// It is held whole until the commit, as it is until it ends without
// milters: MaxHeaderBytes bounds it.
func (rc *reception) milterHeader(header []byte, sep bool) {
	tx := rc.ss.milter
	tx.header, tx.sep = bytes.Clone(header), sep
	if rc.refusal != nil || !tx.live() {
		return
	}
	fields := milter.Fields(headerFields(tx.header, sep))
	for _, run := range tx.runs {
		if run.s == nil {
			continue
		}
		t0 := time.Now()
		v, err := run.s.Header(fields)
		if r := rc.ss.milterJudge(run, "header", t0, v, err); r != nil {
			rc.refuse(r)
			return
		}
	}
}

// headerFields is the header section without the empty line that ends it.
func headerFields(h []byte, sep bool) []byte {
	if sep {
		return bytes.TrimSuffix(h, []byte("\r\n"))
	}
	return h
}

// milterBody sends a piece of the body to the milters as it passes.
func (rc *reception) milterBody(p []byte) {
	tx := rc.ss.milter
	if tx == nil || rc.refusal != nil {
		return
	}
	for _, run := range tx.runs {
		if run.s == nil {
			continue
		}
		t0 := time.Now()
		v, err := run.s.Body(p)
		if r := rc.ss.milterJudge(run, "body", t0, v, err); r != nil {
			rc.refuse(r)
			return
		}
	}
}

// milterEnd asks each milter for its verdict at the end of data and
// collects the header changes of those that let the message pass. The
// first refusal decides; a discard ends the transaction with a 250 and
// nothing queued.
func (rc *reception) milterEnd() error {
	tx := rc.ss.milter
	if tx == nil {
		return nil
	}
	m := rc.ss.s.metrics.milter
	for _, run := range tx.runs {
		if run.s == nil {
			continue
		}
		name := run.f.Spec().Name
		t0 := time.Now()
		changes, ignored, v, err := run.s.End()
		if run.s.Replayed() {
			m.replays.WithLabelValues(name).Inc()
			rc.ss.log.Info("milter conversation sent again on a new connection", "milter", name, "queue_id", rc.id, "err", err)
		}
		for _, ig := range ignored {
			m.ignored.WithLabelValues(name, ig).Inc()
			rc.ss.log.Warn("milter change not applied", "milter", name, "change", ig, "queue_id", rc.id)
		}
		run.s = nil
		if v.Kind == milter.Continue && err == nil {
			v.Kind = milter.Accept // the end of data has no stage after it
		}
		if r := rc.ss.milterJudge(run, "end", t0, v, err); r != nil {
			return r
		}
		if v.Kind == milter.Quarantine {
			// Queued held, as Postfix puts it in its hold queue; the
			// milters after this one still see the message and may
			// refuse it, and its header changes apply.
			reason := name + ": " + v.Reason
			if tx.hold != "" {
				reason = tx.hold + "; " + reason
			}
			tx.hold = reason
		}
		tx.edits = append(tx.edits, changes...)
	}
	if tx.discard != "" {
		return errMilterDiscard
	}
	return nil
}

// milterMessage puts the held header section, with the milters' changes,
// after the header mxd prepends, and tells the queue what the client's
// header section was (for the dedup hash).
func (ss *session) milterMessage(m *queue.Message) {
	tx := ss.milter
	if tx == nil {
		return
	}
	m.HoldReason = tx.hold
	if tx.header == nil {
		return
	}
	h := tx.header
	if len(tx.edits) > 0 {
		fields, bad := milter.Apply(milter.Fields(headerFields(h, tx.sep)), tx.edits)
		if bad > 0 {
			ss.s.metrics.milter.ignored.WithLabelValues("", "bad_header_name").Add(float64(bad))
		}
		h = milter.Join(fields)
		if tx.sep {
			h = append(h, "\r\n"...)
		}
	}
	m.Header = append(m.Header, h...)
	m.Prefix = tx.header
}

// prefixSpool tells a new spool about the header section kept out of
// it, before its first append.
func (rc *reception) prefixSpool() {
	if tx := rc.ss.milter; tx != nil && tx.header != nil {
		rc.spool.Prefix(tx.header)
	}
}

// milterDiscarded answers a discarded message as if it was queued, under
// the transaction's id, and logs and counts it.
func (ss *session) milterDiscarded(id string, size int64, start time.Time) error {
	ss.s.metrics.transactions.WithLabelValues("250").Inc()
	ss.s.metrics.milter.discarded.Inc()
	ss.log.Info("transaction", "id", id, "from", ss.from, "rcpts", len(ss.rcpts), "size", size,
		"code", 250, "discarded_by", ss.milter.discard, "milters", ss.milter.summary(),
		"duration", time.Since(start).Round(time.Microsecond))
	return replyQueued(id)
}
