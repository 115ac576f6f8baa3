package smtpd

import (
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"mxq/smtpd/milter"
)

// A milter's own reply is passed on in the class of its verdict, with its
// enhanced code when that is of the same class, its lines kept and
// anything unprintable replaced; otherwise the named reply.
func TestMilterReply(t *testing.T) {
	tests := []struct {
		name string
		v    milter.Verdict
		want *smtp.SMTPError
	}{
		{"reject", milter.Verdict{Kind: milter.Reject}, replyMilterReject},
		{"tempfail", milter.Verdict{Kind: milter.Tempfail}, replyMilterTempfail},
		{"rspamd's", milter.Verdict{Kind: milter.Reject, Reply: "554 5.7.1 Gtube pattern"},
			&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Gtube pattern"}},
		{"no enhanced code", milter.Verdict{Kind: milter.Tempfail, Reply: "452 busy"},
			&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "busy"}},
		{"enhanced code of another class", milter.Verdict{Kind: milter.Reject, Reply: "550 4.7.1 confused"},
			&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "confused"}},
		{"multiline", milter.Verdict{Kind: milter.Reject, Reply: "554-5.7.1 first\r\n554 5.7.1 second"},
			&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "first\nsecond"}},
		{"control characters", milter.Verdict{Kind: milter.Reject, Reply: "554 5.7.1 bad\x00\x1b[1mtext"},
			&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "bad??[1mtext"}},
		{"a 4xx for a reject", milter.Verdict{Kind: milter.Reject, Reply: "451 4.7.1 later"}, replyMilterReject},
		{"no text", milter.Verdict{Kind: milter.Reject, Reply: "554 5.7.1"}, replyMilterReject},
		{"not a code", milter.Verdict{Kind: milter.Reject, Reply: "nope"}, replyMilterReject},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, milterReply(tt.v)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}
