package smtpd

import (
	"context"
	"net/netip"
	"time"

	"mxq/queue"
	"mxq/smtpd/msgauth"
)

// Authenticator checks a message's SPF, DKIM, DMARC and iprev.
// *msgauth.Checker is the implementation.
type Authenticator interface {
	Check(ctx context.Context, in msgauth.Input) msgauth.Result
}

// authOutcome is what DATA needs from the checks.
type authOutcome struct {
	Header []byte
	Data   []byte // the client's data without forged Authentication-Results
	Record *queue.AuthResults
}

// authenticate runs the checks on the message as received (a signature may
// cover any field, so checks come before anything is removed), applies the
// policy settings, and removes incoming fields that claim our authserv-id.
func (ss *session) authenticate(auth Authenticator, data []byte) (authOutcome, error) {
	ip, _ := netip.ParseAddr(ss.remote)
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.EnqueueTimeout)
	defer cancel()
	t0 := time.Now()
	r := auth.Check(ctx, msgauth.Input{IP: ip, HELO: ss.c.Hostname(), MailFrom: ss.from, Message: data})
	ss.log.Debug("authenticated", "spf", r.SPF, "dkim", r.DKIM, "dmarc", r.DMARC, "iprev", r.IPRev,
		"from_error", r.FromError, "took", time.Since(t0))
	switch {
	case ss.s.cfg.DMARCReject && r.DMARC == msgauth.PermError && r.FromError != "":
		// Without one Author Domain DMARC cannot be applied, and picking
		// one would let the sender choose the policy: RFC 7489 §6.6.1
		// says such messages are typically rejected. It comes first, as
		// no retry changes it. A permerror from a broken DMARC record is
		// not refused: that is the domain's fault, not the message's.
		return authOutcome{}, replyDMARCFrom
	case r.TempError && ss.s.cfg.TempFailDNS:
		return authOutcome{}, replyDNSTemp
	case ss.s.cfg.DMARCReject && r.DMARC == msgauth.Fail && r.DMARCPolicy == "reject":
		return authOutcome{}, replyDMARC
	}
	return authOutcome{
		Header: []byte(r.Header),
		Data:   msgauth.StripForged(data, ss.s.cfg.AuthservID),
		Record: &queue.AuthResults{
			SPF: r.SPF, DKIM: r.DKIM, DMARC: r.DMARC, IPRev: r.IPRev,
			FromDomain: r.FromDomain, DMARCPolicy: r.DMARCPolicy,
		},
	}, nil
}
