package smtpd

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// Named replies: every reply mxd gives of its own is one of these, and
// nothing outside this file builds one or writes a reply line by hand.
// The operator's table of them is in docs/mxd.md ("What a sender sees",
// "What mxd refuses, and why"); TestReplyTable holds the two to each
// other.
//
// Reply codes are RFC 5321's (§4.2.2 groups them by function, §4.2.3
// gives their meanings); enhanced codes are RFC 3463's, whose §3.1 to
// §3.8 define them by subject: X.0 other, X.1 address, X.3 mail system,
// X.4 network and routing, X.5 mail delivery protocol, X.6 message
// content, X.7 security or policy. Each reply names the sections its
// codes come from.

// At connect, and to end a session early. 421: RFC 5321 §3.8, a server
// that must close the channel says so with 421 first (§4.2.2: "may be a
// reply to any command").
var (
	// RFC 5321 §3.8 (421); RFC 3463 §3.4 (X.3.2, system not accepting
	// network messages).
	replyDraining = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, closing transmission channel: host in maintenance, try another MX"}
	// RFC 5321 §3.8 (421); RFC 3463 §3.4 (X.3.2).
	replyShutdown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try another MX"}
	// RFC 5321 §3.8 (421); RFC 3463 §3.8 (X.7.0, other security or
	// policy status).
	replyTooMany = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
	// RFC 5321 §3.8 (421); RFC 3463 §3.8 (X.7.0).
	replyTooManyFrom = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your address, try again later"}
	// replyHTTP and replyUntrustedProxy answer a first line that is not
	// SMTP (conn_sniff.go), then the connection is closed. RFC 5321
	// §4.2.3 (554, transaction failed); RFC 3463 §3.8 (X.7.0).
	replyHTTP           = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "This is an SMTP server, not HTTP"}
	replyUntrustedProxy = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "PROXY header not accepted from this address"}
)

// MAIL and RCPT.
var (
	// RFC 5321 §4.1.4 (503 to a MAIL inside a transaction); RFC 3463
	// §3.6 (X.5.1, invalid command).
	replyNestedMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command: end the transaction or send RSET first"}
	// RFC 5321 §4.1.2 (syntax), §4.2.3 (553, mailbox name not
	// allowed); RFC 3463 §3.2 (X.1.3, bad destination mailbox address
	// syntax).
	replyBadAddress = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}
	// RFC 5321 §4.1.2, §4.2.3 (553); RFC 3463 §3.2 (X.1.2, bad
	// destination system address).
	replyBadDomain = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Bad domain syntax"}
	// RFC 6531 §3.5: 553 and X.6.7 for a non-ASCII address without
	// SMTPUTF8.
	replyNeedUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires SMTPUTF8"}
	// RFC 5321 §3.6.1 (relaying by source route or '%'), §4.2.3 (554);
	// RFC 3463 §3.8 (X.7.1, delivery not authorized).
	replyRouted = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied: routed address ('%' or '!') not accepted"}
	// RFC 5321 §3.6 (relaying), §4.2.3 (554); RFC 3463 §3.8 (X.7.1).
	replyRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	// RFC 5321 §3.3 (550 for a recipient known not to exist); RFC 3463
	// §3.2 (X.1.1, bad destination mailbox address).
	replyNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such list or user here"}
	// RFC 5321 §4.5.3.1.10 (452 for too many recipients); RFC 3463
	// §3.6 (X.5.3, too many recipients).
	replyTooManyRcpts = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
	// RFC 3461 §4.2 (ORCPT), RFC 5321 §4.2.3 (501, syntax error in
	// parameters); RFC 3463 §3.6 (X.5.4, invalid command arguments).
	replyBadORCPT = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Malformed ORCPT parameter value: control characters are not allowed"}
	// replyDuplicateRcpt answers a RCPT for a recipient the transaction
	// already has. The address is valid, so the reply is a success (RFC
	// 3463 §3.2, X.1.5), but the recipient is kept once: each copy would
	// be delivered, and a list would post the message once per copy.
	replyDuplicateRcpt = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 1, 5}, Message: "Duplicate recipient, delivered once"}
)

// The message data: answered after its real end (RFC 5321 §4.2.5; for
// BDAT, RFC 3030).
var (
	// RFC 1870 (SIZE), RFC 5321 §4.2.3 (552, exceeded storage
	// allocation); RFC 3463 §3.4 (X.3.4, message too big for system).
	replyTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed maximum message size"}
	// RFC 5321 §4.2.3 (552); RFC 3463 §3.4 (X.3.4).
	replyHeaderTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message header section too large"}
	// RFC 5321 §2.3.8 (lines end with CRLF), §4.2.3 (554); RFC 3463
	// §3.7 (X.6.0, other or undefined media error).
	replyBareEOL = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message contains bare CR or LF or NUL; lines must end with CRLF"}
	// RFC 5321 §4.5.3.1.6 (1000 octets a line), §4.2.3 (554); RFC 3463
	// §3.7 (X.6.0).
	replyLongLine = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: fmt.Sprintf("Message has a line longer than %d octets; RFC 5321 section 4.5.3.1.6 allows 1000", maxLineLength)}
	// RFC 5322 §2.2.3 (a line that starts with WSP continues the field
	// above), RFC 5321 §4.2.3 (554); RFC 3463 §3.7 (X.6.0).
	replyFoldedStart = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message must begin with a header field, not a folded continuation line"}
	// RFC 5322 §3.6 (Date and From required), RFC 5321 §4.2.3 (554);
	// RFC 3463 §3.7 (X.6.0).
	replyNoHeader = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message has no header section; RFC 5322 section 3.6 requires Date and From fields"}
	// RFC 5321 §6.3 (loop detection by Received fields), §4.2.3 (554);
	// RFC 3463 §3.5 (X.4.6, routing loop detected).
	replyLoop = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Too many Received headers: mail loop"}
	// RFC 7489 §10.3 (rejecting in the SMTP transaction), RFC 5321
	// §4.2.3 (550); RFC 3463 §3.8 (X.7.1, delivery not authorized).
	replyDMARC = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected: DMARC policy of the From domain is reject and the message failed DMARC"}
	// RFC 7489 §6.6.1 (one Author Domain), §10.3; RFC 3463 §3.8
	// (X.7.1).
	replyDMARCFrom = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected: DMARC needs exactly one From field, with addresses of one domain (RFC 7489 section 6.6.1)"}
	// RFC 7208 §8.6 (451 and X.4.3 for a temporary DNS error); RFC
	// 3463 §3.5 (X.4.3, directory server failure).
	replyDNSTemp = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Temporary DNS failure while authenticating the message, try again later"}
	// RFC 5321 §4.5.3.2.5, §4.5.3.2.6 (data timeouts), §4.2.3 (451,
	// local error in processing); RFC 3463 §3.5 (X.4.2, bad
	// connection).
	replyDataTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Data too slow or timed out, closing connection"}
	// RFC 5321 §4.2.3 (451); RFC 3463 §3.5 (X.4.2).
	replyDataAborted = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection problem while receiving data"}
	// replyNoMemory: a header section that cannot get memory. RFC 5321
	// §4.2.3 (452, insufficient system storage); RFC 3463 §3.4 (X.3.1,
	// mail system full).
	replyNoMemory = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage for a header section this long now, try again later"}
	// replyMemoryPressure ends a session whose message data held memory
	// that others waited for while it sent little (see budget.relieve).
	// RFC 5321 §4.2.3 (451); RFC 3463 §3.4 (X.3.2, system not
	// accepting network messages).
	replyMemoryPressure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "System busy: data too slow for the memory it holds, closing connection"}
)

// replyQueued answers a message the queue has acknowledged, id its queue
// id. RFC 5321 §4.2.5 and §6.1 (with 250 the receiver takes
// responsibility for the message); RFC 3463 §3.1 (X.0.0).
func replyQueued(id string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + id}
}

// The queue, and mxd's own failures: never a 5xx, and never the text of
// the error (reply).
var (
	// RFC 5321 §4.2.3 (452, insufficient system storage); RFC 3463
	// §3.4 (X.3.1, mail system full).
	replyQueueOOM = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	// RFC 5321 §4.2.3 (451, local error in processing); RFC 3463 §3.4
	// (X.3.0, other or undefined mail system status).
	replyQueueDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary queue failure, try again later"}
	// RFC 5321 §4.2.3 (451); RFC 3463 §3.4 (X.3.0).
	replyLocal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error in processing, try again later"}
)

// Limits per client (limits.go). RFC 5321 §4.2.2 gives 450 for a mailbox
// "temporarily blocked for policy reasons" and 421 for a service closing
// the channel; RFC 3463 §3.8 (X.7.x) is the security or policy status (X.7.1,
// not authorized now, is what Postfix answers to its rate limits). Not
// 452 4.5.3: a client reads that as "too many recipients for this
// transaction" and sends the rest at once in the next one.
var (
	replyConnectionRate = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many new connections from your address, try again later"}
	replyMessageRate    = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Too much mail from your address, try again later"}
	replyRecipientRate  = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Too many recipients from your address, try again later"}
	replyTooManyErrors  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many errors, closing connection"}
)

// errDataTimeout is returned by the connection when a sender falls below
// the minimum data rate or exceeds the DATA deadline.
var errDataTimeout = errors.New("data deadline exceeded")

// errDataSlow is the errDataTimeout of a sender below the minimum data
// rate, as against one past the DATA timeout.
var errDataSlow = fmt.Errorf("%w: below min_data_rate over data_rate_window", errDataTimeout)

// reply turns any error from the session's work into the SMTP reply the
// client gets: the one place where that mapping lives. Errors that are
// already replies pass unchanged; queue errors map by kind; anything else
// is a temporary local error whose text is not shown to the client.
func reply(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	var qe *queue.Error
	switch {
	case errors.As(err, &qe) && qe.Kind == queue.OutOfMemory:
		return replyQueueOOM
	case errors.As(err, &qe):
		return replyQueueDown
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return replyQueueDown
	case errors.Is(err, errDataTimeout):
		return replyDataTimeout
	}
	return replyLocal
}

// replyLine is r as one reply line on the wire, for replies written
// outside go-smtp (at connect, to a client that does not speak SMTP, and
// to close an idle session).
func replyLine(r *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
}

// Content filters (milter.go): Postfix's replies to what a milter says,
// so that a milter's operator finds what Postfix would have answered. A
// milter's own reply, when it gives one, replaces these (replyMilter).
var (
	// SMFIR_REJECT. RFC 5321 §4.2.3 (550, not taken); RFC 3463 §3.8
	// (X.7.1, delivery not authorized, message refused).
	replyMilterReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Command rejected"}
	// SMFIR_TEMPFAIL, and a milter that fails with default_action
	// tempfail. RFC 5321 §4.2.3 (451, local error in processing); RFC
	// 3463 §3.8 (X.7.1).
	replyMilterTempfail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Service unavailable - try again later"}
)

// replyMilter is a milter's own reply (SMFIR_REPLYCODE), already held to
// the class of its verdict and stripped of control characters by
// milterReply: RFC 5321 §4.2 (a code and text of the milter's choice),
// RFC 3463 (its enhanced code, or that of def when it gave none that
// matches its class).
func replyMilter(code int, enh smtp.EnhancedCode, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}
