package smtpd_test

import (
	"context"
	"strings"
	"testing"
)

// Received fields count toward max_received however their name is
// written: any case, and with white space before the colon (RFC 5322
// §4.5, the obsolete syntax, which readers still accept).
func TestReceivedCountedInEveryForm(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxReceived = 3 })
	c := greeted(t, e.addr, false)
	for _, name := range []string{"Received:", "RECEIVED :", "received\t:", "ReCeIvEd \t :"} {
		got := c.SendMail("a@example.com", []string{listAddr}, strings.Repeat(name+" from x by y\r\n", 4)+"\r\nbody\r\n")
		if !strings.HasPrefix(got, "554 5.4.6") {
			t.Errorf("4 fields named %q: %q, want 554 5.4.6", name, got)
		}
	}
	// Three are within the limit; a field whose name only starts with
	// "Received" is another field.
	for _, hdr := range []string{strings.Repeat("RECEIVED : from x by y\r\n", 3), strings.Repeat("Received-SPF: pass\r\nReceivedX: y\r\n", 4)} {
		if got := c.SendMail("a@example.com", []string{listAddr}, hdr+"\r\nbody\r\n"); !strings.HasPrefix(got, "250 2.0.0") {
			t.Errorf("header %q: %q, want 250", hdr, got)
		}
	}
}

// maxLine is the longest line of s, without its CRLF.
func maxLine(s string) (n int) {
	for _, l := range strings.Split(s, "\r\n") {
		n = max(n, len(l))
	}
	return n
}

// ourReceived is the first field of a stored body: the one mxd wrote.
func ourReceived(t *testing.T, body string) string {
	t.Helper()
	end := strings.Index(body, "\r\n")
	for end >= 0 && end+2 < len(body) && (body[end+2] == '\t' || body[end+2] == ' ') {
		next := strings.Index(body[end+2:], "\r\n")
		if next < 0 {
			break
		}
		end += 2 + next
	}
	if !strings.HasPrefix(body, "Received: ") || end < 0 {
		t.Fatalf("body does not start with a Received field:\n%.300q", body)
	}
	return body[:end+2]
}

// No line of our Received field is longer than RFC 5322 §2.1.1's 998
// octets, whatever the client sent, and none is longer than 78 where
// that is possible.
func TestReceivedLineLength(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	longLocal := "~" + strings.Repeat("l", 30) + "/" + strings.Repeat("n", 32) // 64 octets
	tests := []struct {
		name, helo, rcpt string
		max              int
	}{
		{"longest HELO", strings.Repeat("h", 1990), listAddr, 998},
		{"long HELO", strings.Repeat("a", 60) + ".example.com", listAddr, 78},
		{"long address", "client.example.com", longLocal + "@" + domain, 998},
		{"usual", "client.example.com", listAddr, 78},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := dial(t, e.addr)
			c.Expect("HELO "+tt.helo, "250")
			got := c.SendMail("alice@example.com", []string{tt.rcpt}, message(tt.name))
			id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
			if !ok {
				t.Fatalf("end of data: %q", got)
			}
			rcv := ourReceived(t, e.body(id))
			if n := maxLine(rcv); n > tt.max {
				t.Errorf("a line of %d octets, want at most %d:\n%.600s", n, tt.max, rcv)
			}
			if !strings.Contains(rcv, "for <"+tt.rcpt+">;") && !strings.Contains(rcv, "for\r\n\t<"+tt.rcpt+">;") {
				t.Errorf("no for <%s>:\n%s", tt.rcpt, rcv)
			}
			// The HELO, cut at 255 octets (RFC 5321 §4.5.3.1.2: the
			// longest domain).
			if helo := tt.helo[:min(len(tt.helo), 255)]; !strings.Contains(rcv, helo) || len(tt.helo) > 255 && strings.Contains(rcv, tt.helo[:256]) {
				t.Errorf("want the HELO's first 255 octets:\n%.600s", rcv)
			}
		})
	}
}

// The protocol in our Received is what the session used (RFC 3848,
// RFC 6531): SMTP after HELO, ESMTP after EHLO, S with TLS, UTF8SMTP with
// SMTPUTF8.
func TestReceivedProtocol(t *testing.T) {
	e := newTLSEnv(t)
	tests := []struct {
		greeting string
		tls      bool
		mail     string
		want     string
	}{
		{"HELO", false, "", "with SMTP id"},
		{"EHLO", false, "", "with ESMTP id"},
		{"EHLO", false, " SMTPUTF8", "with UTF8SMTP id"},
		{"EHLO", true, "", "with ESMTPS id"},
		{"EHLO", true, " SMTPUTF8", "with UTF8SMTPS id"},
		{"HELO", true, "", "with ESMTPS id"}, // STARTTLS needed EHLO
	}
	for i, tt := range tests {
		c, _ := dial(t, e.addr)
		if tt.tls {
			c.Expect("EHLO client.example.com", "250")
			c.starttls("")
		}
		c.Expect(tt.greeting+" client.example.com", "250")
		c.Expect("MAIL FROM:<alice@example.com>"+tt.mail, "250")
		c.Expect("RCPT TO:<"+listAddr+">", "250")
		c.Expect("DATA", "354")
		c.Send(message("proto "+itoa(i)) + ".\r\n")
		id, ok := strings.CutPrefix(c.Read(), "250 2.0.0 queued as ")
		if !ok {
			t.Fatalf("%s tls=%v%s: not queued", tt.greeting, tt.tls, tt.mail)
		}
		if rcv := ourReceived(t, e.body(id)); !strings.Contains(rcv, tt.want) {
			t.Errorf("%s tls=%v%s: want %q in\n%s", tt.greeting, tt.tls, tt.mail, tt.want, rcv)
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != int64(len(tests)) {
		t.Errorf("depth %d, want %d", n, len(tests))
	}
}

// Our Authentication-Results field is held to RFC 5322 §2.1.1's 998
// octets a line too: the client chooses the HELO name (smtp.helo, for the
// null sender), the From domain (header.from) and a DKIM-Signature's d=
// and s= (header.d, header.s), each up to a line of its own in length.
func TestAuthenticationResultsLineLength(t *testing.T) {
	ns := startDNS(t, map[string]string{})
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.Auth, c.AuthservID = checker(t, ns), domain })
	long := strings.Repeat("d", 60) + strings.Repeat(".d"+strings.Repeat("o", 60), 25) + ".example" // 1,633 octets
	c, _ := dial(t, e.addr)
	c.Expect("EHLO "+strings.Repeat("h", 1990), "250")
	body := "DKIM-Signature: v=1; a=rsa-sha256;\r\n d=" + long + ";\r\n s=" + long + ";\r\n h=from; bh=YQ==; b=YQ==\r\n" +
		"From: <a@" + long + ">\r\nSubject: long\r\n\r\nhi\r\n"
	got := c.SendMail("", []string{listAddr}, body)
	id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
	if !ok {
		t.Fatalf("end of data: %q", got)
	}
	stored := e.body(id)
	ours := stored[:strings.Index(stored, "DKIM-Signature:")]
	if !strings.Contains(ours, "Authentication-Results: "+domain) {
		t.Fatalf("no Authentication-Results of ours:\n%.800s", ours)
	}
	if n := maxLine(ours); n > 998 {
		t.Errorf("a line of %d octets in our fields, want at most 998:\n%.800s", n, ours)
	}
}
