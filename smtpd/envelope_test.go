package smtpd_test

import (
	"context"
	"strings"
	"testing"
)

// ORCPT is xtext (RFC 3461 §4) decoded once, by the receiver: the record
// holds the type, upper-cased, and the decoded address, so "+2B0A" is the four characters "+0A", and
// "%0A" stays as it is. A value that decodes to a control character, or
// is not xtext, is a syntax error; nothing of it reaches the record.
func TestORCPT(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := greeted(t, e.addr, false)
	c.Expect("MAIL FROM:<alice@example.com> SMTPUTF8", "250")
	accepted := []struct{ param, stored string }{
		{"rfc822;a+2B0AX-Injected:+2B20yes", "RFC822;a+0AX-Injected:+20yes"},
		{"rfc822;b%0AX-Injected:%20yes", "RFC822;b%0AX-Injected:%20yes"},
		{"rfc822;c+2B00d", "RFC822;c+00d"},
		{"RFC822;Dev+2Bx@lists.example.org", "RFC822;Dev+x@lists.example.org"},
		{"utf-8;j\\x{FC}rgen@example.org", "UTF-8;jürgen@example.org"},
	}
	for i, tt := range accepted {
		c.Expect("RCPT TO:<~a/l"+itoa(i)+"@"+domain+"> ORCPT="+tt.param, "250")
	}
	refused := []string{
		"rfc822;a+0AX-Injected:+20yes",         // LF
		"rfc822;c+00d",                         // NUL
		"rfc822;a+7F",                          // DEL
		"rfc822;a+2",                           // not xtext
		"rfc822;a+2b",                          // hexchar is upper case
		"utf-8;a\\x{9}b@example.org",           // malformed (and TAB)
		"utf-8;a\\x{09}b@example.org",          // TAB
		"utf-8;a\\x{7F}b@example.org",          // DEL
		"utf-8;a\\x{85}b@example.org",          // NEL, a C1 control
		"utf-8;a\\x{2028}b@example.org",        // LINE SEPARATOR
		"utf-8;a\xffb@example.org",             // not UTF-8
		"rfc822;a@b ORCPT=rfc822;c@d",          // twice
		"rfc822;",                              // empty
		"rfc822;a@b NOTIFY=NEVER NOTIFY=NEVER", // twice
	}
	for _, p := range refused {
		if got := c.Cmd("RCPT TO:<~a/refused@" + domain + "> ORCPT=" + p); !strings.HasPrefix(got, "501 5.5.4") {
			t.Errorf("ORCPT=%q: %q, want 501 5.5.4", p, got)
		}
	}
	c.Expect("DATA", "354")
	c.Send(message("orcpt") + ".\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("end of data: %q", got)
	}
	recs, err := e.q.Peek(context.Background(), 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Peek = %v, %v", recs, err)
	}
	if len(recs[0].Rcpts) != len(accepted) {
		t.Fatalf("recipients %+v, want %d", recs[0].Rcpts, len(accepted))
	}
	for i, tt := range accepted {
		if got := recs[0].Rcpts[i].Params["ORCPT"]; got != tt.stored {
			t.Errorf("ORCPT=%s stored as %q, want %q", tt.param, got, tt.stored)
		}
	}
}

// A MAIL parameter given twice, and a value for SMTPUTF8, which takes
// none, are syntax errors: 501 5.5.4, and no transaction.
func TestMailParameterSyntax(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := greeted(t, e.addr, false)
	for _, p := range []string{"SIZE=1 SIZE=2", "SIZE=1 size=1", "SMTPUTF8=x", "SMTPUTF8=", "SIZE=", "BODY=8BITMIME BODY=7BIT"} {
		if got := c.Cmd("MAIL FROM:<alice@example.com> " + p); !strings.HasPrefix(got, "501 5.5.4") {
			t.Errorf("MAIL FROM:<alice@example.com> %s: %q, want 501 5.5.4", p, got)
		}
		if got := c.Cmd("RCPT TO:<" + listAddr + ">"); !strings.HasPrefix(got, "5") {
			t.Errorf("RCPT after a refused MAIL %s: %q, want no transaction", p, got)
		}
	}
	c.Expect("MAIL FROM:<alice@example.com> SIZE=100 SMTPUTF8", "250")
}
