package msgauth

import (
	"bytes"
	"net/netip"
	"testing"
)

// signed is a message from `from`, signed by each domain/selector pair in
// turn, then changed by tamper (if not nil).
func signed(mailFrom, from string, tamper func([]byte) []byte, sigs ...string) func(t testing.TB, e *env) Input {
	return func(t testing.TB, e *env) Input {
		msg := message(from)
		for i := 0; i+1 < len(sigs); i += 2 {
			msg = e.sign(t, msg, sigs[i], sigs[i+1])
		}
		if tamper != nil {
			msg = tamper(msg)
		}
		return Input{IP: client, HELO: helo, MailFrom: mailFrom, Message: msg}
	}
}

func replace(old, new string) func([]byte) []byte {
	return func(msg []byte) []byte {
		return bytes.Replace(msg, []byte(old), []byte(new), 1)
	}
}

func dkimCases() []checkCase {
	const mf, from = "a@nodmarc.test", "a@nodmarc.test"
	dkim := func(name string, in func(t testing.TB, e *env) Input, sigs ...string) checkCase {
		best := None
		for _, s := range sigs {
			if dkimRank(s) < dkimRank(best) {
				best = s
			}
		}
		return checkCase{name: "dkim " + name, in: in, want: verdict{SPF: Pass, DKIM: best,
			DMARC: None, IPRev: Pass, Signatures: sigs, TempError: best == TempError}}
	}
	seven := []string{}
	for range 7 {
		seven = append(seven, "nodmarc.test", "ed")
	}
	cap := dkim("over the signature cap", signed(mf, from, nil, seven...),
		Pass, Pass, Pass, Pass, Pass)
	cap.want.DKIMSkipped = 2
	return []checkCase{
		dkim("rsa-2048 pass", signed(mf, from, nil, "nodmarc.test", "rsa"), Pass),
		dkim("ed25519 pass", signed(mf, from, nil, "nodmarc.test", "ed"), Pass),
		dkim("two signatures", signed(mf, from, nil, "nodmarc.test", "rsa", "nodmarc.test", "ed"), Pass, Pass),
		dkim("body tampered", signed(mf, from, replace("Hello, list.", "Hello, lost."),
			"nodmarc.test", "rsa"), Fail),
		dkim("header tampered", signed(mf, from, replace("Subject: a test", "Subject: a tost"),
			"nodmarc.test", "ed"), Fail),
		dkim("body appended", signed(mf, from, func(m []byte) []byte { return append(m, "PS.\r\n"...) },
			"nodmarc.test", "ed"), Fail),
		dkim("tampered and intact", signed(mf, from, replace("DKIM-Signature: a=ed25519-sha256",
			"DKIM-Signature: a=rsa-sha256"), "nodmarc.test", "rsa", "nodmarc.test", "ed"), PermError, Pass),
		dkim("unknown selector", signed(mf, from, nil, "nodmarc.test", "nosuch"), PermError),
		dkim("revoked key", signed(mf, from, nil, "example.test", "revoked"), PermError),
		dkim("key lookup temperror", signed(mf, from, nil, "broken.test", "ed"), TempError),
		cap,
	}
}

func dmarcCases() []checkCase {
	type v = verdict
	return []checkCase{
		{"dmarc pass by spf and dkim", signed("a@example.test", "A <a@example.test>", nil, "example.test", "rsa"),
			v{SPF: Pass, DKIM: Pass, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject",
				SPFAligned: true, DKIMAligned: true, Signatures: []string{Pass}}},
		{"dmarc pass by relaxed spf", plain("bounce@mail.example.test", "a@example.test"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject", SPFAligned: true}},
		{"dmarc pass by dkim only", signed("bounce@fail.example.test", "a@example.test", nil, "example.test", "ed"),
			v{SPF: Fail, DKIM: Pass, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject",
				DKIMAligned: true, Signatures: []string{Pass}}},
		{"dmarc fail", plain("bounce@fail.example.test", "a@example.test"),
			v{SPF: Fail, DKIM: None, DMARC: Fail, IPRev: Pass, DMARCPolicy: "reject"}},
		{"dmarc fail tampered", signed("bounce@softfail.example.test", "a@example.test",
			replace("Hello, list.", "Hello, lost."), "example.test", "rsa"),
			v{SPF: SoftFail, DKIM: Fail, DMARC: Fail, IPRev: Pass, DMARCPolicy: "reject", Signatures: []string{Fail}}},
		{"dmarc fail unaligned passes", signed("a@nodmarc.test", "a@example.test", nil, "nodmarc.test", "ed"),
			v{SPF: Pass, DKIM: Pass, DMARC: Fail, IPRev: Pass, DMARCPolicy: "reject", Signatures: []string{Pass}}},
		{"dmarc strict spf unaligned", plain("bounce@mail.strict.test", "a@strict.test"),
			v{SPF: Pass, DKIM: None, DMARC: Fail, IPRev: Pass, DMARCPolicy: "reject"}},
		{"dmarc strict spf aligned", plain("bounce@strict.test", "a@strict.test"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject", SPFAligned: true}},
		{"dmarc strict spf relaxed dkim", signed("bounce@mail.strict.test", "a@strict.test", nil, "mail.strict.test", "rsa"),
			v{SPF: Pass, DKIM: Pass, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject",
				DKIMAligned: true, Signatures: []string{Pass}}},
		{"dmarc subdomain policy", plain("bounce@example.test", "a@sub.example.test"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "quarantine", SPFAligned: true}},
		{"dmarc subdomain fail", plain("bounce@fail.example.test", "a@sub.example.test"),
			v{SPF: Fail, DKIM: None, DMARC: Fail, IPRev: Pass, DMARCPolicy: "quarantine"}},
		{"dmarc p=none pass", plain("bounce@monitor.test", "a@monitor.test"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "none", SPFAligned: true}},
		{"dmarc p=none fail", plain("bounce@fail.example.test", "a@monitor.test"),
			v{SPF: Fail, DKIM: None, DMARC: Fail, IPRev: Pass, DMARCPolicy: "none"}},
		{"dmarc no record", plain("bounce@nodmarc.test", "a@nodmarc.test"),
			v{SPF: Pass, DKIM: None, DMARC: None, IPRev: Pass}},
		{"dmarc invalid record", plain("bounce@badrec.test", "a@badrec.test"),
			v{SPF: Pass, DKIM: None, DMARC: None, IPRev: Pass}},
		{"dmarc policy temperror", plain("bounce@example.test", "a@broken.test"),
			v{SPF: Pass, DKIM: None, DMARC: TempError, IPRev: Pass, TempError: true}},
		{"dmarc aligned spf temperror", plain("bounce@tempinc.example.test", "a@example.test"),
			v{SPF: TempError, DKIM: None, DMARC: TempError, IPRev: Pass, DMARCPolicy: "reject", TempError: true}},
		{"dmarc two from fields", fromField("From: a@example.test\r\nFrom: b@nodmarc.test\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: PermError, IPRev: Pass, FromError: true}},
		{"dmarc from of two domains", fromField("From: a@example.test, b@nodmarc.test\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: PermError, IPRev: Pass, FromError: true}},
		{"dmarc from of one domain twice", fromField("From: a@example.test, \"B\" <b@Example.Test>\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject", SPFAligned: true}},
		{"dmarc folded from", fromField("From: \"A\"\r\n <a@example.test>\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: Pass, IPRev: Pass, DMARCPolicy: "reject", SPFAligned: true}},
		{"dmarc unparsable from", fromField("From: a@example.test <b@nodmarc.test\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: PermError, IPRev: Pass, FromError: true}},
		{"dmarc from without domain", fromField("From: postmaster\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: PermError, IPRev: Pass, FromError: true}},
		{"dmarc no from", fromField(""),
			v{SPF: Pass, DKIM: None, DMARC: None, IPRev: Pass}},
		{"dmarc empty group from", fromField("From: undisclosed-senders:;\r\n"),
			v{SPF: Pass, DKIM: None, DMARC: None, IPRev: Pass}},
	}
}

// fromField is an unsigned message with the given From fields, sent with
// MAIL FROM bounce@example.test (SPF pass).
func fromField(fields string) func(t testing.TB, e *env) Input {
	return func(t testing.TB, e *env) Input {
		msg := fields + "To: ~owner/list@lists.test\r\nSubject: from\r\n\r\nbody\r\n"
		return Input{IP: client, HELO: helo, MailFrom: "bounce@example.test", Message: []byte(msg)}
	}
}

func iprevCases() []checkCase {
	iprev := func(name, ip, result string) checkCase {
		return checkCase{name: "iprev " + name, in: func(t testing.TB, e *env) Input {
			return Input{IP: netip.MustParseAddr(ip), HELO: helo, MailFrom: "bounce@neutral.example.test",
				Message: message("a@nodmarc.test")}
		}, want: verdict{SPF: Neutral, DKIM: None, DMARC: None, IPRev: result, TempError: result == TempError}}
	}
	return []checkCase{
		iprev("pass", "127.0.0.2", Pass),
		iprev("pass ipv4-mapped", "::ffff:127.0.0.2", Pass),
		iprev("pass on the second name", "127.0.0.7", Pass),
		iprev("fail", "127.0.0.3", Fail),
		iprev("no ptr", "127.0.0.4", PermError),
		iprev("forward temperror", "127.0.0.5", TempError),
		iprev("ptr temperror", "127.0.0.6", TempError),
		iprev("ipv6 refused", "::1", TempError),
	}
}
