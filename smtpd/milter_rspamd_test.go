package smtpd_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/internal/rspamd"
	"mxq/smtpd"
)

// One rspamd serves the package's tests: it takes about 25 seconds to
// start.
var shared struct {
	once sync.Once
	srv  *rspamd.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	os.Exit(code)
}

// startRspamd returns the package's rspamd, starting it at the first call.
func startRspamd(t *testing.T) *rspamd.Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.srv, shared.err = rspamd.Start(ctx)
	})
	if shared.err != nil {
		t.Fatalf("rspamd: %v", shared.err)
	}
	return shared.srv
}

// withMilters puts the milters in front of the queue.
func withMilters(ms ...string) envOpt {
	return func(c *setup) { c.Milter.Milters = ms }
}

// transport runs one transaction from alice to the list with body (which
// ends in CRLF) and returns the final reply.
type transport struct {
	name string
	send func(t *testing.T, addr, body string) string
}

var transports = []transport{
	{"DATA", func(t *testing.T, addr, body string) string {
		c := startData(t, addr)
		c.Send(body + ".\r\n")
		return c.Read()
	}},
	{"BDAT", func(t *testing.T, addr, body string) string {
		c := greeted(t, addr, false)
		c.sendEnvelope()
		half := len(body) / 2
		c.Send(fmt.Sprintf("BDAT %d\r\n%s", half, body[:half]))
		if got := c.Read(); !strings.HasPrefix(got, "250") {
			t.Fatalf("first BDAT: %q", got)
		}
		c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body)-half, body[half:]))
		return c.Read()
	}},
	{"STARTTLS", func(t *testing.T, addr, body string) string {
		c := greeted(t, addr, true)
		c.sendEnvelope()
		c.Expect("DATA", "354")
		c.Send(body + ".\r\n")
		return c.Read()
	}},
}

// milterEnv is a server with STARTTLS and the milters ms.
func milterEnv(t *testing.T, ms ...string) *env {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, nil, "mx1.example.org", withMilters(ms...), func(c *setup) { c.TLS = store.TLSConfig() })
}

// queuedID reads the queue id from a 250 reply.
func queuedID(t *testing.T, reply string) string {
	t.Helper()
	id, ok := strings.CutPrefix(reply, "250 2.0.0 queued as ")
	if !ok {
		t.Fatalf("reply %q, want 250 queued", reply)
	}
	return id
}

// GTUBE is refused at the end of data with rspamd's own reply, and
// nothing is queued; through DATA, BDAT and STARTTLS.
func TestRspamdRefusesGTUBE(t *testing.T) {
	r := startRspamd(t)
	e := milterEnv(t, "inet:"+r.Addr)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			body := "From: a@example.com\r\nTo: " + listAddr + "\r\nSubject: gtube " + tr.name + "\r\n\r\n" +
				"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
			got := tr.send(t, e.addr, body)
			if want := "554 5.7.1 Gtube pattern"; got != want {
				t.Errorf("GTUBE: %q, want %q", got, want)
			}
		})
	}
	recs, err := e.q.Peek(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("%d messages queued, want none", len(recs))
	}
	if keys := rawKeys(t, e.redis, "{mxq}:*"); len(keys) > 0 {
		for _, k := range keys {
			if strings.Contains(k, ":spool:") || strings.Contains(k, ":body:") {
				t.Errorf("key left: %s", k)
			}
		}
	}
	if !strings.Contains(e.logs.String(), `milters="inet:`+r.Addr+`=reject"`) {
		t.Errorf("log has no reject verdict of the milter:\n%s", e.logs.String())
	}
}

// A normal message is queued with rspamd's header fields, the sender's
// forged X-Spam-Status gone; "rewrite subject" changes the stored
// Subject; through DATA, BDAT and STARTTLS.
func TestRspamdHeaderChanges(t *testing.T) {
	r := startRspamd(t)
	e := milterEnv(t, "inet:"+r.Addr)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, rewrite := range []bool{false, true} {
				subject := "hello " + tr.name
				if rewrite {
					subject += " " + rspamd.RewriteMarker
				}
				body := "From: a@example.com\r\nTo: " + listAddr + "\r\nSubject: " + subject + "\r\n" +
					"X-Spam-Status: No, score=-100 (forged by the sender)\r\n" +
					fmt.Sprintf("Message-ID: <%s.%v@example.com>\r\n\r\nHello.\r\n", tr.name, rewrite)
				id := queuedID(t, tr.send(t, e.addr, body))
				stored := e.body(id)
				hdr, rest, _ := strings.Cut(stored, "\r\n\r\n")
				hdr += "\r\n"
				if rest != "Hello.\r\n" {
					t.Errorf("stored body %q, want Hello.", rest)
				}
				if strings.Contains(hdr, "forged") || strings.Count(hdr, "X-Spam-Status:") != 1 {
					t.Errorf("stored header keeps the forged field or lacks rspamd's:\n%s", hdr)
				}
				if !strings.Contains(hdr, "\r\nX-Rspamd-Queue-Id: "+id+"\r\n") || !strings.Contains(hdr, "\r\nX-Spamd-Result: ") {
					t.Errorf("stored header lacks rspamd's fields with queue id %s:\n%s", id, hdr)
				}
				wantSubject := "\r\nSubject: " + subject + "\r\n"
				if rewrite {
					wantSubject = "\r\nSubject: " + rspamd.SubjectPrefix + subject + "\r\n"
				}
				if !strings.Contains(hdr, wantSubject) || strings.Count(hdr, "Subject:") != 1 {
					t.Errorf("rewrite=%v: want %q in the stored header:\n%s", rewrite, wantSubject, hdr)
				}
				if !strings.HasPrefix(hdr, "Received: from client.example.com") {
					t.Errorf("stored header does not start with mxd's Received:\n%s", hdr)
				}
				if strings.Contains(strings.ReplaceAll(stored, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(stored, "\r\n", ""), "\r") {
					t.Errorf("stored message has a bare CR or LF:\n%q", hdr)
				}
			}
		})
	}
}

// A 20 MB message passes rspamd in chunks as it arrives: mxd's heap
// grows by far less than the message.
func TestRspamdBigMessageMemoryFlat(t *testing.T) {
	r := startRspamd(t)
	e := milterEnv(t, "inet:"+r.Addr)
	const size = 20 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	c := startData(t, e.addr)
	w := c.Conn()
	io.WriteString(w, "From: a@example.com\r\nTo: "+listAddr+"\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\r\n")
	line := []byte(strings.Repeat("0123456789abcdef", 4) + "\r\n")
	for n := 0; n < size; n += len(line) {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(w, ".\r\n")
	id := queuedID(t, c.Read())
	close(stop)
	wg.Wait()
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use: %d MiB before, %d MiB at the peak", base.HeapInuse>>20, peak.Load()>>20)
	if grew > size/4 {
		t.Errorf("heap grew by %d MiB for a %d MiB message", grew>>20, size>>20)
	}
	stored := e.body(id)
	if len(stored) < size || !strings.Contains(stored[:4096], "X-Spam-Status: ") {
		t.Errorf("stored %d bytes, want more than %d with rspamd's header", len(stored), size)
	}
}

// rspamd's quarantine (its reject turned into SMFIR_QUARANTINE, as its
// quarantine_on_reject does) queues the message held with rspamd's
// reason, answered 250; its discard answers 250 and queues nothing.
func TestRspamdQuarantineAndDiscard(t *testing.T) {
	r := startRspamd(t)
	ml := "inet:" + r.Addr
	e := milterEnv(t, ml)
	ctx := context.Background()
	send := func(subject string) string {
		c := startData(t, e.addr)
		c.Send("From: a@example.com\r\nTo: " + listAddr + "\r\nSubject: " + subject + "\r\nMessage-ID: <" +
			strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n\r\nHello.\r\n.\r\n")
		return c.Read()
	}
	id := queuedID(t, send("held "+rspamd.QuarantineMarker))
	held, err := e.q.HeldMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].ID != id {
		t.Fatalf("held %+v, want %s", held, id)
	}
	if want := ml + ": " + rspamd.QuarantineReason; held[0].Reason != want {
		t.Errorf("reason %q, want %q", held[0].Reason, want)
	}
	discarded := queuedID(t, send("dropped "+rspamd.DiscardMarker))
	if recs, err := e.q.Peek(ctx, 10); err != nil || len(recs) != 0 {
		t.Errorf("queue has %d messages (err %v), want none", len(recs), err)
	}
	if held, _ := e.q.HeldMessages(ctx); len(held) != 1 {
		t.Errorf("%d held after the discard, want 1", len(held))
	}
	for _, want := range []string{`held="` + ml + ": " + rspamd.QuarantineReason + `"`, "id=" + discarded, "discarded_by=" + ml} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, e.logs.String())
		}
	}
}

// rspamd restarted under load (SIGTERM, then started again, as its
// service's restart does) is ridden through: every message sent before,
// during and after is queued, none gets a 4xx or the default action, and
// the spam mixed into the load is refused throughout.
func TestRspamdRestartUnderLoad(t *testing.T) {
	r := startRspamd(t)
	e := newEnv(t, nil, "mx1.example.org", withMilters("inet:"+r.Addr), manySenders)
	ctx := context.Background()
	ham := startSenders(e.addr, 4)
	var spam struct {
		sync.Mutex
		refused int
		other   []string
	}
	stopSpam := make(chan struct{})
	spamDone := make(chan struct{})
	go func() {
		defer close(spamDone)
		for {
			select {
			case <-stopSpam:
				return
			default:
			}
			err := sendGTUBE(e.addr)
			spam.Lock()
			if se, ok := err.(*smtp.SMTPError); ok && se.Code == 554 && se.Message == "Gtube pattern" {
				spam.refused++
			} else {
				spam.other = append(spam.other, fmt.Sprint(err))
			}
			spam.Unlock()
		}
	}()
	ham.waitCount(t, 20)
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err := r.Restart(rctx)
	cancel()
	took := time.Since(t0)
	if err != nil {
		ham.halt()
		close(stopSpam)
		<-spamDone
		t.Fatal(err)
	}
	during := ham.count()
	ham.waitCount(t, during+20)
	ham.halt()
	close(stopSpam)
	<-spamDone

	if refused := ham.someRefused(); len(refused) > 0 {
		t.Errorf("messages not queued: %v", refused)
	}
	spam.Lock()
	defer spam.Unlock()
	if len(spam.other) > 0 || spam.refused == 0 {
		t.Errorf("spam refused %d times, otherwise answered %v", spam.refused, spam.other[:min(len(spam.other), 5)])
	}
	recs, err := e.q.Peek(ctx, int64(ham.count()+10))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != ham.count() {
		t.Errorf("%d messages queued, %d answered 250", len(recs), ham.count())
	}
	t.Logf("rspamd restarted in %v; %d messages queued (%d by the end of the restart), %d spam refused, %v sent again on a new connection",
		took.Round(time.Millisecond), ham.count(), during, spam.refused, metric(t, e.reg, "mxd_milter_replays_total", ""))
	if strings.Contains(e.logs.String(), "milter failed") {
		t.Errorf("a milter failure:\n%s", e.logs.String())
	}
}

// sendGTUBE sends GTUBE to the list in a session of its own and returns
// the error of its final reply.
func sendGTUBE(addr string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.com"); err != nil {
		return err
	}
	if err := c.Mail("spammer@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt(listAddr, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "From: spammer@example.com\r\nSubject: buy\r\n\r\n"+
		"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"); err != nil {
		return err
	}
	_, err = w.CloseWithResponse()
	return err
}
