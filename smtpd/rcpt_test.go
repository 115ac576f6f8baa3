package smtpd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mxq/queue"
)

// TestLookalikeRecipients sends addresses that only Unicode case folding,
// an empty wildcard match or an invisible character would take for a
// registered one.
func TestLookalikeRecipients(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", noErrorLimits)
	ctx := context.Background()
	// Literal entries, and a pattern that cannot match "~k/x": the
	// default "~*/*" would take "~\u212a/x" as a list of its own.
	if err := e.q.RemoveRecipients(ctx, "~*/*@"+domain); err != nil {
		t.Fatal(err)
	}
	if err := e.q.AddRecipients(ctx, "post@"+domain, "~k/x@"+domain, "~*/list@"+domain); err != nil {
		t.Fatal(err)
	}
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com> SMTPUTF8", "250")
	tests := []struct{ rcpt, want string }{
		{"post@" + domain, "250 "},
		{"~K/x@LISTS.example.org", "250 "}, // ASCII letters still fold
		{"~a/list@" + domain, "250 "},
		{"post@lİsts.example.org", "554 5.7.1"},       // U+0130
		{"post@lists.example.\u212aorg", "554 5.7.1"}, // KELVIN SIGN
		{"~\u212a/x@" + domain, "550 5.1.1"},
		{"po\u017ft@" + domain, "550 5.1.1"}, // LONG S
		{"~/list@" + domain, "550 5.1.1"},    // '*' matches one character or more
		{"~/x@" + domain, "550 5.1.1"},
		{"~a/@" + domain, "553 5.1.3"},
		{"~a//list@" + domain, "553 5.1.3"},
		{"~../..@" + domain, "553 5.1.3"},
		{"~a/./list@" + domain, "553 5.1.3"},
		{".post@" + domain, "553 5.1.3"},
		{"post.@" + domain, "553 5.1.3"},
		{"po..st@" + domain, "553 5.1.3"},
		{"po\u00a0st@" + domain, "553 5.1.3"}, // no-break space
		{"post\u00a0@" + domain, "553 5.1.3"},
		{"po\u2003st@" + domain, "553 5.1.3"}, // em space
		{"po\u200bst@" + domain, "553 5.1.3"}, // zero width space
		{"po\u202est@" + domain, "553 5.1.3"}, // right-to-left override
		{"po\ufeffst@" + domain, "553 5.1.3"},
		{"po\u0085st@" + domain, "553 5.1.3"}, // NEL
		{"post@lists\u00a0example.org", "553 5.1.2"},
		{"post@lists.example.org\u200b", "553 5.1.2"},
	}
	for _, tt := range tests {
		if got := c.Cmd("RCPT TO:<" + tt.rcpt + ">"); !strings.HasPrefix(got, tt.want) {
			t.Errorf("RCPT TO:<%s> = %q, want %s", tt.rcpt, got, tt.want)
		}
	}
	// MAIL FROM refuses invisible characters too, but keeps accepting
	// senders with double dots, which exist.
	c.Expect("RSET", "250")
	if got := c.Cmd("MAIL FROM:<al\u00a0ice@example.com> SMTPUTF8"); !strings.HasPrefix(got, "553 5.1.3") {
		t.Errorf("MAIL FROM with a no-break space: %q, want 553 5.1.3", got)
	}
	c.Expect("MAIL FROM:<al..ice@example.com>", "250")
}

// TestDuplicateRecipients gives one list address in seven spellings:
// the message is queued once, with the address once; subaddresses stay
// recipients of their own, and duplicates do not count against the
// limit.
func TestDuplicateRecipients(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxRecipients = 4 })
	ctx := context.Background()
	if err := e.q.AddRecipients(ctx, "post@"+domain); err != nil {
		t.Fatal(err)
	}
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	const dup = "250 2.1.5 Duplicate recipient"
	for _, tt := range []struct{ rcpt, want string }{
		{"post@" + domain, "250 "},
		{"POST@" + domain, dup},
		{"Post@LISTS.EXAMPLE.ORG", dup},
		{"@relay.example:pOsT@Lists.Example.Org", dup}, // source route
		{"post+1@" + domain, "250 "},
		{"POST+1@" + domain, dup},
		{"post+1@Lists.example.org", dup},
		{"~o/l+subscribe@" + domain, "250 "}, // a command to lists.sr.ht
		{"~o/l@" + domain, "250 "},
		{"~O/L+SUBSCRIBE@" + domain, dup}, // at the limit: a duplicate does not count
		{"~o/m@" + domain, "452 4.5.3"},
	} {
		if got := c.Cmd("RCPT TO:<" + tt.rcpt + ">"); !strings.HasPrefix(got, tt.want) {
			t.Errorf("RCPT TO:<%s> = %q, want %s", tt.rcpt, got, tt.want)
		}
	}
	c.Expect("DATA", "354")
	c.Send(message("duplicates") + ".\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("DATA: %q", got)
	}
	recs, err := e.q.Peek(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records queued, want 1: %+v", len(recs), recs)
	}
	want := []queue.Recipient{
		{Addr: "post@" + domain},
		{Addr: "post+1@" + domain},
		{Addr: "~o/l+subscribe@" + domain},
		{Addr: "~o/l@" + domain},
	}
	if diff := cmp.Diff(want, recs[0].Rcpts); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
}
