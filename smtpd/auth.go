package smtpd

import (
	"context"
	"net/netip"
	"time"

	"mxq/queue"
	"mxq/smtpd/msgauth"
)

// Authenticator checks a message's SPF, DKIM, DMARC and iprev while it
// arrives. *msgauth.Checker is the implementation.
type Authenticator interface {
	Begin(ctx context.Context, in msgauth.Input) *msgauth.Run
}

// authOutcome is what DATA needs from the checks.
type authOutcome struct {
	Header []byte
	Record *queue.AuthResults
}

// beginAuth starts the checks on the header section as received (a
// signature may cover any field, so they see it before forged fields are
// removed); the body follows through the Run.
func (ss *session) beginAuth(ctx context.Context, auth Authenticator, header []byte) *msgauth.Run {
	ip, _ := netip.ParseAddr(ss.remote)
	return auth.Begin(ctx, msgauth.Input{IP: ip, HELO: ss.c.Hostname(), MailFrom: ss.from, Message: header})
}

// authVerdict finishes the checks and applies the policy settings.
func (ss *session) authVerdict(run *msgauth.Run) (authOutcome, error) {
	t0 := time.Now()
	r := run.Finish()
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
		Record: &queue.AuthResults{
			SPF: r.SPF, DKIM: r.DKIM, DMARC: r.DMARC, IPRev: r.IPRev,
			FromDomain: r.FromDomain, DMARCPolicy: r.DMARCPolicy,
		},
	}, nil
}

// stripForged removes incoming Authentication-Results that claim our
// authserv-id from a header section; it copies the header only when it
// removes something.
func stripForged(header []byte, authservID string) []byte {
	return msgauth.StripForged(header, authservID)
}
