package milter

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Entries as Postfix's smtpd_milters writes them, with settings of their
// own in braces; what an entry leaves out comes from the defaults.
func TestParse(t *testing.T) {
	d := Spec{ConnectTimeout: 30 * time.Second, CommandTimeout: 30 * time.Second, ContentTimeout: 300 * time.Second,
		DefaultAction: Tempfail, MaxConnections: 64, RideThrough: 10 * time.Second}
	with := func(f func(*Spec)) Spec {
		s := d
		f(&s)
		return s
	}
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{"inet:127.0.0.1:11332", with(func(s *Spec) { s.Name, s.Network, s.Address = "inet:127.0.0.1:11332", "tcp", "127.0.0.1:11332" }), ""},
		{"inet:[::1]:11332", with(func(s *Spec) { s.Name, s.Network, s.Address = "inet:[::1]:11332", "tcp", "[::1]:11332" }), ""},
		{"unix:/run/clamav/clamav-milter.ctl", with(func(s *Spec) {
			s.Name, s.Network, s.Address = "unix:/run/clamav/clamav-milter.ctl", "unix", "/run/clamav/clamav-milter.ctl"
		}), ""},
		{"{ inet:10.0.0.9:11332, default_action=accept, connect_timeout=5s, command_timeout=6s, content_timeout=1m }", with(func(s *Spec) {
			s.Name, s.Network, s.Address = "inet:10.0.0.9:11332", "tcp", "10.0.0.9:11332"
			s.DefaultAction, s.ConnectTimeout, s.CommandTimeout, s.ContentTimeout = Accept, 5*time.Second, 6*time.Second, time.Minute
		}), ""},
		{"{inet:10.0.0.9:11332,default_action=reject}", with(func(s *Spec) {
			s.Name, s.Network, s.Address, s.DefaultAction = "inet:10.0.0.9:11332", "tcp", "10.0.0.9:11332", Reject
		}), ""},
		{"127.0.0.1:11332", Spec{}, "want inet:host:port or unix:/path"},
		{"inet:localhost", Spec{}, "want inet:host:port"},
		{"{ inet:127.0.0.1:11332, default_action=discard }", Spec{}, `default_action "discard"`},
		{"{ inet:127.0.0.1:11332, timeout=5s }", Spec{}, "unknown setting"},
		{"{ inet:127.0.0.1:11332, command_timeout }", Spec{}, "want name=value"},
		{"{ inet:127.0.0.1:11332, command_timeout=soon }", Spec{}, "command_timeout"},
		{"{ inet:127.0.0.1:11332", Spec{}, "must end with }"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, d)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q): error %v, want one with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// Header changes as Postfix applies them: indexes count the fields
// present when the change comes, an empty value deletes, a name compares
// without case, and no bare CR or LF reaches the stored header.
func TestApply(t *testing.T) {
	header := "From: a@example.com\r\nSubject: hello\r\nX-Spam-Status: No, forged\r\nX-Spam-Status: Yes\r\nReceived: from x\r\n\tby y\r\n"
	tests := []struct {
		name    string
		changes []Change
		want    string
		bad     int
	}{
		{"nothing", nil, header, 0},
		{"add", []Change{{Op: AddHeader, Name: "X-Spamd-Result", Value: "default: False [0.0 / 15.0]"}},
			header + "X-Spamd-Result: default: False [0.0 / 15.0]\r\n", 0},
		{"insert first", []Change{{Op: InsertHeader, Index: 0, Name: "X-First", Value: "1"}},
			"X-First: 1\r\n" + header, 0},
		{"insert past the end", []Change{{Op: InsertHeader, Index: 99, Name: "X-Last", Value: "1"}},
			header + "X-Last: 1\r\n", 0},
		{"delete every X-Spam-Status, first index 1 twice", []Change{
			{Op: ChangeHeader, Index: 1, Name: "x-spam-status"}, {Op: ChangeHeader, Index: 1, Name: "X-Spam-Status"}},
			"From: a@example.com\r\nSubject: hello\r\nReceived: from x\r\n\tby y\r\n", 0},
		{"change the second", []Change{{Op: ChangeHeader, Index: 2, Name: "X-Spam-Status", Value: "No, score=1.0"}},
			"From: a@example.com\r\nSubject: hello\r\nX-Spam-Status: No, forged\r\nX-Spam-Status: No, score=1.0\r\nReceived: from x\r\n\tby y\r\n", 0},
		{"change a field not there adds it", []Change{{Op: ChangeHeader, Index: 1, Name: "X-New", Value: "v"}},
			header + "X-New: v\r\n", 0},
		{"delete a field not there", []Change{{Op: ChangeHeader, Index: 1, Name: "X-None"}}, header, 0},
		{"folded with LF alone, an empty line and a NUL", []Change{{Op: AddHeader, Name: "X-Fold", Value: "a\nb\n\n\x00c\r\n d\re"}},
			header + "X-Fold: a\r\n\tb\r\n\tc\r\n de\r\n", 0},
		{"bad names dropped", []Change{{Op: AddHeader, Name: "Bad Name", Value: "v"}, {Op: AddHeader, Name: "", Value: "v"},
			{Op: AddHeader, Name: "X:y", Value: "v"}}, header, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, bad := Apply(Fields([]byte(header)), tt.changes)
			if got := string(Join(fields)); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			if bad != tt.bad {
				t.Errorf("%d bad, want %d", bad, tt.bad)
			}
		})
	}
}

// A header section split into fields and joined again is the same
// bytes, continuation lines and lines without a colon kept with the
// field before them; values are what milters expect.
func TestFields(t *testing.T) {
	h := "Subject: one\r\n two\r\nX-Empty:\r\nnot a field\r\nX-Tab:\tv\r\n"
	fields := Fields([]byte(h))
	if got := string(Join(fields)); got != h {
		t.Errorf("round trip %q, want %q", got, h)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.Name+"="+f.value())
	}
	want := []string{"Subject=one\r\n two", "X-Empty=\r\nnot a field", "X-Tab=v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}
