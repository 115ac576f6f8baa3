package smtpd

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// Named replies: every reply mxd gives of its own is one of these, and the
// operator's table of them is in docs/mxd.md.
var (
	replyQueueOOM     = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	replyQueueDown    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary queue failure, try again later"}
	replyDraining     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, closing transmission channel: host in maintenance, try another MX"}
	replyShutdown     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try another MX"}
	replyTooMany      = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
	replyTooManyFrom  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your address, try again later"}
	replyTooBig       = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed maximum message size"}
	replyTooManyRcpts = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
	replyNoSuchUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such list or user here"}
	replyRelayDenied  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	replyBareEOL      = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message contains bare CR or LF or NUL; lines must end with CRLF"}
	replyFoldedStart  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message must begin with a header field, not a folded continuation line"}
	replyNeedUTF8     = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires SMTPUTF8"}
	replyNoMemory     = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage for a header section this long now, try again later"}
	replyHeaderTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message header section too large"}
	replyDMARC        = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected: DMARC policy of the From domain is reject and the message failed DMARC"}
	replyDMARCFrom    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected: DMARC needs exactly one From field, with addresses of one domain (RFC 7489 section 6.6.1)"}
	replyDNSTemp      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Temporary DNS failure while authenticating the message, try again later"}
	replyLoop         = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Too many Received headers: mail loop"}
	replyDataTimeout  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Data too slow or timed out, closing connection"}
	replyDataAborted  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection problem while receiving data"}
	replyLocal        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error in processing, try again later"}
)

// errDataTimeout is returned by the connection when a sender falls below
// the minimum data rate or exceeds the DATA deadline.
var errDataTimeout = errors.New("data deadline exceeded")

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
// outside go-smtp (at connect, and to close an idle session).
func replyLine(r *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
}
