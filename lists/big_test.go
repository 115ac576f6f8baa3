package lists_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/lists"
	"mxq/lists/liststest"
	"mxq/queue"
)

// bigSize is the size of a big message's data: mxd's largest by default.
const bigSize = 32 << 20

// mxHeader is what the MX host puts in front of the client's data.
const mxHeader = "Received: from client.example.com (client.example.com [192.0.2.1])\r\n" +
	"\tby mx1.example.org with ESMTP id test; Tue, 1 Dec 2026 00:00:00 +0000\r\n" +
	"Authentication-Results: mx1.example.org; spf=pass smtp.mailfrom=example.com\r\n"

// bigData returns a message of exactly size bytes (size ≥ 200): a header,
// then lines of random lengths (up to 200 bytes) of random printable
// characters, some starting with a dot (stuffed on the wire) or "From ",
// every line ending in CRLF. seed makes it repeatable.
func bigData(id string, size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, size)
	b = fmt.Appendf(b, "From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: big %s\r\nMessage-ID: <%s@example.com>\r\n\r\n", id, id)
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+/()<>"
	for len(b) < size {
		n := min(rng.IntN(200), size-len(b)-2)
		start := len(b)
		for range n {
			b = append(b, chars[rng.IntN(len(chars))])
		}
		switch rng.IntN(40) {
		case 0:
			if n > 0 {
				b[start] = '.'
			}
		case 1:
			if n >= 5 {
				copy(b[start:], "From ")
			}
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// putBig enqueues data with mxHeader for rcpts, through queue.Enqueue
// (which spools big data in chunks), and returns the record.
func (e *env) putBig(t testing.TB, data []byte, rcpts ...string) *queue.Record {
	t.Helper()
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "alice@example.com", Arrived: time.Now()}
	for _, r := range rcpts {
		rec.Rcpts = append(rec.Rcpts, queue.Recipient{Addr: r})
	}
	if _, err := e.q.Enqueue(context.Background(), &queue.Message{Record: rec, Header: []byte(mxHeader), Data: data}); err != nil {
		t.Fatal(err)
	}
	return rec
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sumReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// A 32 MiB message reaches every kind of destination byte for byte as it
// is stored (the MX host's header, then the client's data): a program's
// stdin and an SMTP relay get it as it is (smtp-sink dumps it with LF
// line endings), a Maildir with LF line endings after its Return-Path
// and Delivered-To, Dovecot's LMTP with LF line endings after the header
// fields Dovecot adds.
func TestBigMessageEveryDestination(t *testing.T) {
	const lmtpRcpt, maildirRcpt, execRcpt, smtpRcpt = "lmtp@lists.example.org", "maildir@lists.example.org",
		"exec@lists.example.org", "smtp@lists.example.org"
	dv := liststest.StartDovecot(t, lmtpRcpt)
	sink := liststest.StartSink(t)
	e := newEnv(t)
	dir := t.TempDir()
	maildir := filepath.Join(dir, "maildir")
	execSum := filepath.Join(dir, "exec.sha256")
	r := &lists.Router{Routes: []lists.Route{
		{Match: lmtpRcpt, To: &lists.LMTP{Addr: dv.Socket()}},
		{Match: maildirRcpt, To: &lists.Maildir{Dir: maildir}},
		{Match: execRcpt, To: &lists.Exec{Argv: []string{"/bin/sh", "-c", `exec sha256sum > "$0"`, execSum}}},
		{Match: smtpRcpt, To: &lists.SMTP{Addr: sink.Addr}},
	}}
	id := queue.NewID(time.Now())
	stored := append([]byte(mxHeader), bigData(id, bigSize, 1)...)
	rec := e.putBig(t, stored[len(mxHeader):], lmtpRcpt, maildirRcpt, execRcpt, smtpRcpt)
	if rec.Size != int64(len(stored)) {
		t.Fatalf("record size %d, want %d", rec.Size, len(stored))
	}
	e.run(t, fastRetries, r)
	waitForSized(t, "delivery", 4*bigSize, e.drained(t))
	if dead, err := e.q.DeadLetters(context.Background()); err != nil || len(dead) > 0 {
		t.Fatalf("dead letters: %+v, %v", dead, err)
	}
	want, wantLF := sum(stored), sum(lf(stored))

	t.Run("exec", func(t *testing.T) {
		b, err := os.ReadFile(execSum)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, _ := strings.Cut(string(b), " "); got != want {
			t.Errorf("the program read sha256 %s, want %s", got, want)
		}
	})
	t.Run("maildir", func(t *testing.T) {
		files := maildirFiles(t, maildir)
		if len(files) != 1 {
			t.Fatalf("%d files in new/, want 1", len(files))
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		copyWant := append([]byte("Return-Path: <alice@example.com>\nDelivered-To: "+maildirRcpt+"\n"), lf(stored)...)
		if got, w := sum(b), sum(copyWant); got != w {
			t.Errorf("Maildir copy: %d bytes, sha256 %s; want %d bytes, %s", len(b), got, len(copyWant), w)
		}
	})
	t.Run("smtp", func(t *testing.T) {
		// smtp-sink may still be writing the dump when it has answered.
		var got string
		var n int64
		waitFor(t, "smtp-sink's dump", func() bool {
			d := sink.Dumps()
			if len(d) != 1 {
				return false
			}
			m, err := liststest.OpenMessage(d[0])
			if err != nil {
				return false
			}
			defer m.Close()
			got, n, err = sumReader(m)
			return err == nil
		})
		if got != wantLF {
			t.Errorf("smtp-sink got %d bytes (LF line endings), sha256 %s; want %d bytes, %s", n, got, len(lf(stored)), wantLF)
		}
	})
	t.Run("lmtp", func(t *testing.T) {
		out, err := dv.Fetch(lmtpRcpt, "text")
		if err != nil {
			t.Fatal(err)
		}
		text, ok := bytes.CutPrefix(out, []byte("text:\n"))
		msg := lf(stored)
		if !ok || len(text) < len(msg) {
			t.Fatalf("doveadm fetch text: %d bytes, want more than %d:\n%.500s", len(out), len(msg), out)
		}
		added, got := text[:len(text)-len(msg)], text[len(text)-len(msg):]
		if sum(got) != wantLF {
			t.Errorf("Dovecot stored %d bytes, the last %d of which have sha256 %s; want %s", len(text), len(msg), sum(got), wantLF)
		}
		if !bytes.HasPrefix(added, []byte("Return-Path: <alice@example.com>\n")) || !bytes.Contains(added, []byte("Delivered-To: "+lmtpRcpt+"\n")) {
			t.Errorf("Dovecot's own header fields:\n%s", added)
		}
	})
}

// heapPeak samples the live heap (as measured by each garbage collection)
// while something runs, and keeps its highest value.
type heapPeak struct {
	stop chan struct{}
	done chan uint64
}

// liveHeap is the heap the last garbage collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		peak := liveHeap()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, liveHeap())
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// Stop returns the highest live heap seen.
func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	return <-h.done
}

// Delivering several 32 MiB messages at once, to a Maildir and to a
// program, holds a few chunks of each, not the messages: the live heap
// grows by less than 16 × 4 chunks per delivery in flight, where holding
// the messages would take 32 MiB per delivery.
func TestBigMessagesMemory(t *testing.T) {
	const msgs = 4 // env.run's Concurrency: all are in flight at once
	e := newEnv(t)
	dir := t.TempDir()
	r := &lists.Router{Routes: []lists.Route{
		{Match: "maildir@lists.example.org", To: &lists.Maildir{Dir: dir}},
		{Match: "exec@lists.example.org", To: &lists.Exec{Argv: []string{"/bin/sh", "-c", "exec cat > /dev/null"}}},
	}}
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.putBig(t, bigData(fmt.Sprint(i), bigSize, uint64(i)), "maildir@lists.example.org", "exec@lists.example.org")
		}()
	}
	wg.Wait()
	runtime.GC()
	base := liveHeap()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := startHeapPeak()
	e.run(t, fastRetries, r)
	waitForSized(t, "delivery", 2*msgs*bigSize, e.drained(t))
	top := peak.Stop()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if n := len(maildirFiles(t, dir)); n != msgs {
		t.Fatalf("%d files in the Maildir, want %d", n, msgs)
	}
	grew := int64(top) - int64(base)
	bound := int64(msgs * 16 * 4 * queue.ChunkSize)
	delivered := float64(2*msgs*bigSize) / (1 << 20)
	t.Logf("live heap %.1f MiB before, %.1f MiB at most during %d deliveries of 32 MiB (%.0f MiB in all); "+
		"%.2f MiB allocated per MiB delivered; %d garbage collections",
		mib(base), mib(top), 2*msgs, delivered, mib(after.TotalAlloc-before.TotalAlloc)/delivered, after.NumGC-before.NumGC)
	if grew > bound {
		t.Errorf("the live heap grew by %.1f MiB while %d messages of 32 MiB were delivered at once, want at most %.1f MiB",
			mib(uint64(grew)), msgs, mib(uint64(bound)))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
