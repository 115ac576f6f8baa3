package smtpd

import (
	"github.com/emersion/go-smtp"

	"mxq/queue"
)

// replyDuplicateRcpt answers a RCPT for a recipient the transaction
// already has. The address is valid, so the reply is a success (RFC 3463
// X.1.5), but the recipient is kept once: each copy would be delivered,
// and a list would post the message once per copy.
var replyDuplicateRcpt = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 1, 5}, Message: "Duplicate recipient, delivered once"}

// hasRcpt reports whether the transaction already has a recipient that is
// the same address as a to the registry: equal but for the case of ASCII
// letters (queue.SameAddress), so "post", "POST" and "Post" are one
// recipient. A subaddress is another recipient: "list+subscribe" is a
// command to lists.sr.ht and mlmmj, "list+owner" reaches mlmmj's owner,
// and mxd cannot tell such a tag from one that only decorates a post, so
// merging "list+tag" into "list" could turn a command into a post or
// lose it.
//
// The first copy wins, with its NOTIFY and ORCPT parameters. The
// recipients are at most MaxRecipients, so a scan is cheap.
func (ss *session) hasRcpt(a address) bool {
	addr := a.String()
	for _, r := range ss.rcpts {
		if queue.SameAddress(r.Addr, addr) {
			return true
		}
	}
	return false
}
