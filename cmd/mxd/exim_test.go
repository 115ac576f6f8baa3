package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mxq/internal/exim"
	"mxq/internal/servertest"
	"mxq/queue/queuetest"
)

// Exim sends BDAT (RFC 3030, CHUNKING) whenever the server offers it,
// which Postfix's client never does: here a real sender of BDAT delivers
// messages of 10 KiB and 20 MiB to mxd, in plaintext and over STARTTLS,
// and listd writes them into a Maildir. Exim's log shows that each went
// with BDAT, and over TLS where it should; each message arrives byte for
// byte behind the header fields mxd and listd put in front; mxd's peak
// memory grows by far less than the 20 MiB message.
func TestEximSendsBDAT(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root (Exim with its own configuration runs as Debian-exim); run make test")
	}
	r := queuetest.StartRedis(t)
	dir := t.TempDir()
	writeCert(t, dir)
	// SPF and the other checks ask a resolver that is not there: no
	// query leaves the machine, and the answers are temperror at once.
	mxd := startMxd(t, r, fmt.Sprintf("tls_cert = %q\ntls_key = %q\ndns_resolver = \"127.0.0.1:%d\"\ndns_timeout = \"1s\"\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), servertest.FreePort(t)))
	maildir := startListd(t, r)
	const rcpt = "~exim/bdat@lists.example.org"
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"starttls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			x := exim.New(t, exim.Config{Server: mxd.addr, TLS: tc.tls, CACert: filepath.Join(dir, "cert.pem")})
			for _, size := range []int{10 << 10, 20 << 20} {
				msg := writeMessage(t, fmt.Sprintf("%s %d", tc.name, size), rcpt, size)
				var base int64
				if size > 1<<20 {
					mxd.resetPeak(t)
					base = mxd.status(t, "VmHWM")
				}
				f, err := os.Open(msg)
				if err != nil {
					t.Fatal(err)
				}
				d := x.Send(t, "alice@example.com", rcpt, f)
				f.Close()
				t.Logf("exim: %s", d.Line)
				if _, ok := d.Field("K"); !ok {
					t.Errorf("%d bytes: Exim did not send BDAT (no K in its log line)", size)
				}
				cipher, ok := d.Field("X")
				if ok != tc.tls {
					t.Errorf("%d bytes: TLS cipher %q in Exim's log, want TLS %v", size, cipher, tc.tls)
				}
				if cv, _ := d.Field("CV"); tc.tls && cv != "yes" {
					t.Errorf("%d bytes: Exim's verification of mxd's certificate: CV=%q, want yes", size, cv)
				}
				reply, _ := d.Field("C")
				id, ok := strings.CutPrefix(reply, "250 2.0.0 queued as ")
				if !ok {
					t.Fatalf("%d bytes: mxd answered %q", size, reply)
				}
				got := maildirFile(t, maildir, id)
				prefix := sameTail(t, got, msg)
				checkPrefix(t, prefix, tc.tls)
				if size > 1<<20 {
					peak := mxd.status(t, "VmHWM")
					t.Logf("mxd's VmHWM %d MiB before, %d MiB after a message of %d MiB", base>>20, peak>>20, size>>20)
					if peak-base > int64(size)/2 {
						t.Errorf("mxd's peak memory grew by %d MiB with a message of %d MiB", (peak-base)>>20, size>>20)
					}
				}
			}
		})
	}
}

// startListd runs listd, delivering every list address into a Maildir,
// and returns the Maildir.
func startListd(t *testing.T, r *queuetest.Redis) string {
	t.Helper()
	dir := t.TempDir()
	maildir := filepath.Join(dir, "maildir")
	conf := servertest.WriteFile(t, dir, "listd.toml", fmt.Sprintf("redis = %q\n[[route]]\nmatch = \"~*/*@lists.example.org\"\nmaildir = %q\n", r.URL(), maildir))
	_, logs := runDaemon(t, "listd", build(t, "listd", "../listd"), conf)
	waitUntil(t, "listd started", func() bool { return strings.Contains(logs.String(), "msg=started") })
	return maildir
}

// writeMessage writes a message of about size bytes to rcpt as a local
// program hands it to Exim (lines end in LF), and returns its path. The
// body has what DATA would change on the way and BDAT must not: lines of
// a single dot and lines that start with dots, a line "From ", tabs,
// trailing spaces, empty lines, long lines.
func writeMessage(t *testing.T, subject, rcpt string, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "message")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	n, _ := fmt.Fprintf(w, "From: alice@example.com\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <%d@example.com>\n\n",
		rcpt, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	long := strings.Repeat("0123456789", 90)
	for i := 0; n < size; i++ {
		var k int
		switch i % 8 {
		case 0:
			k, _ = w.WriteString(".\n")
		case 1:
			k, _ = fmt.Fprintf(w, "..line %09d starts with two dots\n", i)
		case 2:
			k, _ = w.WriteString("From the start of a line, as in an mbox\n")
		case 3:
			k, _ = fmt.Fprintf(w, "\ttab, then trailing spaces %d   \n", i)
		case 4:
			k, _ = w.WriteString("\n")
		case 5:
			k, _ = fmt.Fprintf(w, "%s %d\n", long, i)
		default:
			k, _ = fmt.Fprintf(w, "line %09d of %s, padded to look like the text of a mail\n", i, subject)
		}
		n += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// maildirFile waits for the copy of queue id in the Maildir's new/ and
// returns its path (named SECONDS.M<µs>Q<id>R<hash>.HOST).
func maildirFile(t *testing.T, maildir, id string) string {
	t.Helper()
	var path string
	waitUntil(t, "the copy of "+id+" in the Maildir", func() bool {
		m, _ := filepath.Glob(filepath.Join(maildir, "new", "*Q"+id+"R*"))
		if len(m) == 1 {
			path = m[0]
		}
		return path != ""
	})
	return path
}

// sameTail fails the test unless the file got ends with the bytes of the
// file sent, and returns what is in front of them.
func sameTail(t *testing.T, got, sent string) string {
	t.Helper()
	g, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	s, err := os.Open(sent)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gi, _ := g.Stat()
	si, _ := s.Stat()
	if gi.Size() < si.Size() {
		t.Fatalf("delivered %d bytes, sent %d", gi.Size(), si.Size())
	}
	prefix := make([]byte, gi.Size()-si.Size())
	if _, err := io.ReadFull(g, prefix); err != nil {
		t.Fatal(err)
	}
	gb, sb := make([]byte, 64<<10), make([]byte, 64<<10)
	for off := int64(0); off < si.Size(); {
		n, err := io.ReadFull(s, sb)
		if err != nil && err != io.ErrUnexpectedEOF {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(g, gb[:n]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb[:n], sb[:n]) {
			i := 0
			for gb[i] == sb[i] {
				i++
			}
			t.Fatalf("delivered message differs from the sent one at byte %d of %d: %q, sent %q",
				off+int64(i), si.Size(), gb[i:min(i+60, n)], sb[i:min(i+60, n)])
		}
		off += int64(n)
	}
	return string(prefix)
}

// checkPrefix checks that what listd and mxd put in front of the message
// is their header fields and nothing else: a field Exim added, or bytes
// lost, would show here.
func checkPrefix(t *testing.T, prefix string, tls bool) {
	t.Helper()
	var names []string
	for _, line := range strings.SplitAfter(prefix, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		names = append(names, name)
	}
	if want := "Return-Path Delivered-To Received Authentication-Results"; strings.Join(names, " ") != want {
		t.Errorf("header fields in front of the message: %q, want %s:\n%s", names, want, prefix)
	}
	with := "with ESMTP id"
	if tls {
		with = "with ESMTPS id"
	}
	if !strings.Contains(prefix, "Received: from sender.example.com ([127.0.0.1])") || !strings.Contains(prefix, with) {
		t.Errorf("mxd's Received field lacks the sender or %q:\n%s", with, prefix)
	}
}
