package smtpd_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/internal/smtptest"
	"mxq/queue"
	"mxq/queue/queuetest"
)

// bigBody is a message of about n bytes, dot-stuffing aside, with lines
// that differ so that a chunk out of place shows.
func bigBody(subject string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: a@example.com\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\n", listAddr, subject, strings.ReplaceAll(subject, " ", "."))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %08d of %s, padded to look like the text of a mail ...\r\n", i, subject)
	}
	return b.String()
}

// sendBig runs one transaction with body (which must need no
// dot-stuffing) and returns the final reply.
func sendBig(t *testing.T, addr, body string) string {
	t.Helper()
	c := startData(t, addr)
	c.Send(body + ".\r\n")
	return c.Read()
}

// rawKeys lists the keys of the queue that match pattern.
func rawKeys(t *testing.T, r *queuetest.Redis, pattern string) []string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A big message is stored and read back byte for byte: the MX host's
// header in front of the client's data.
func TestBigMessageRoundTrip(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	body := bigBody("big round trip", 5<<20+777)
	got := sendBig(t, e.addr, body)
	if !strings.HasPrefix(got, "250 2.0.0 queued as ") {
		t.Fatalf("big message: %q", got)
	}
	id := strings.TrimPrefix(got, "250 2.0.0 queued as ")
	stored := e.body(id)
	if !strings.HasPrefix(stored, "Received: ") || !strings.HasSuffix(stored, body) {
		t.Fatalf("stored %d bytes: not our header then the %d bytes sent", len(stored), len(body))
	}
	if sha256.Sum256([]byte(stored[len(stored)-len(body):])) != sha256.Sum256([]byte(body)) {
		t.Error("data differs")
	}
	if keys := rawKeys(t, e.redis, "{mxq}:spool:*"); len(keys) != 0 {
		t.Errorf("spools left: %v", keys)
	}
}

// The same big message through two MX hosts is queued once.
func TestBigMessageDedupAcrossMX(t *testing.T) {
	r := queuetest.StartRedis(t)
	mx1 := newEnv(t, r, "mx1.example.org")
	mx2 := newEnv(t, r, "mx2.example.org")
	body := bigBody("sent twice", 8_000_000)
	r1 := sendBig(t, mx1.addr, body)
	r2 := sendBig(t, mx2.addr, body)
	if !strings.HasPrefix(r1, "250 ") || r1 != r2 {
		t.Errorf("replies %q and %q: want the same queue id", r1, r2)
	}
	if n, _ := mx1.q.Depth(context.Background()); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
	if keys := rawKeys(t, r, "{mxq}:spool:*"); len(keys) != 0 {
		t.Errorf("spools left: %v", keys)
	}
}

// Redis reaches maxmemory in the middle of a big DATA: 452 4.3.1 after
// the end of data, nothing queued, nothing left; a small message once
// memory is free again is queued.
func TestBigMessageOutOfMemory(t *testing.T) {
	r := queuetest.StartRedis(t, queuetest.MaxMemory("6mb"))
	e := newEnv(t, r, "mx1.example.org")
	got := sendBig(t, e.addr, bigBody("too much", 16<<20))
	if !strings.HasPrefix(got, "452 4.3.1") {
		t.Fatalf("DATA past maxmemory: %q, want 452 4.3.1", got)
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d", n)
	}
	if keys := rawKeys(t, r, "{mxq}:[bs][op]*:*"); len(keys) != 0 {
		t.Errorf("bodies or spools left: %v", keys)
	}
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	if got := c.SendMail("alice@example.com", []string{listAddr}, message("small after oom")); !strings.HasPrefix(got, "250 ") {
		t.Errorf("small message after the big one was dropped: %q", got)
	}
}

// The checks of the data's bytes hold wherever the offending bytes fall,
// in particular across the boundaries of the blocks mxd reads into, of
// the batches it spools, and of the header section.
func TestBadBytesAtBlockBoundaries(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", noErrorLimits)
	variants := []struct {
		name, bad, want string
	}{
		{"bare LF", "x\ny", "554 5.6.0"},
		{"bare CR", "x\ry", "554 5.6.0"},
		{"NUL", "x\x00y", "554 5.6.0"},
		{"LF dot", "\n.\r\n", "554 5.6.0"},
		{"dot CR", "\r\n.\rMAIL FROM:<x@y>", "554 5.6.0"},
	}
	head := "From: a@example.com\r\nSubject: boundaries\r\n\r\n"
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	for _, boundary := range []int{queue.ChunkSize, 4 * queue.ChunkSize} {
		for off := -4; off <= 4; off++ {
			for _, v := range variants {
				// Filler lines put the bad bytes at boundary+off.
				var b strings.Builder
				b.WriteString(head)
				for b.Len() < boundary+off-80 {
					b.WriteString(strings.Repeat("f", 60) + "\r\n")
				}
				b.WriteString(strings.Repeat("g", boundary+off-b.Len()))
				b.WriteString(v.bad + "\r\nend\r\n")
				c.Expect("MAIL FROM:<alice@example.com>", "250")
				c.Expect("RCPT TO:<"+listAddr+">", "250")
				c.Expect("DATA", "354")
				c.Send(b.String() + ".\r\n")
				if got := c.Read(); !strings.HasPrefix(got, v.want) {
					t.Errorf("%s at %d%+d: %q, want %s", v.name, boundary, off, got, v.want)
				}
			}
		}
	}
	// A leading space would join the first line to our header; a header
	// section over the limit is refused whatever block it ends in.
	c.Expect("MAIL FROM:<alice@example.com>", "250")
	c.Expect("RCPT TO:<"+listAddr+">", "250")
	c.Expect("DATA", "354")
	c.Send("\tdkim=pass header.d=example.com\r\nFrom: a@example.com\r\n\r\nx\r\n.\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "554 5.6.0") {
		t.Errorf("leading tab: %q, want 554 5.6.0", got)
	}
	if n, _ := e.q.Depth(context.Background()); n != 0 {
		t.Errorf("depth = %d, want nothing queued", n)
	}
	if keys := rawKeys(t, e.redis, "{mxq}:spool:*"); len(keys) != 0 {
		t.Errorf("spools left: %v", keys)
	}
}

// A header section bigger than a block is fine up to the limit, and
// refused over it, read to the end of data either way.
func TestLongHeaderSection(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MaxHeaderBytes = 200 << 10 })
	field := "X-Filler: " + strings.Repeat("h", 70) + "\r\n"
	for _, tt := range []struct {
		size int
		want string
	}{{150 << 10, "250 "}, {300 << 10, "552 5.3.4"}} {
		var b bytes.Buffer
		b.WriteString("From: a@example.com\r\n")
		for b.Len() < tt.size {
			b.WriteString(field)
		}
		b.WriteString("\r\n" + strings.Repeat("body line\r\n", 10000))
		if got := sendBig(t, e.addr, b.String()); !strings.HasPrefix(got, tt.want) {
			t.Errorf("header of %d bytes: %q, want %s", tt.size, got, tt.want)
		}
	}
}

// Small messages keep flowing while a budget far smaller than the big
// messages in flight makes the big ones wait their turn: nothing is
// refused, everything is queued.
func TestBudgetSlowsDownNotRefuses(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MemoryBudget, c.MaxConnectionsPerIP = 1<<20, 100 })
	const big, small = 6, 20
	replies := make(chan string, big+small)
	for i := range big {
		go func() { replies <- sendBigNoFatal(t, e.addr, bigBody(fmt.Sprint("big ", i), 4<<20)) }()
	}
	for i := range small {
		go func() { replies <- sendBigNoFatal(t, e.addr, message(fmt.Sprint("small ", i))) }()
	}
	timeout := time.After(2 * time.Minute)
	for range big + small {
		select {
		case got := <-replies:
			if !strings.HasPrefix(got, "250 ") {
				t.Errorf("reply %q, want 250", got)
			}
		case <-timeout:
			t.Fatal("transactions did not finish")
		}
	}
	if n, _ := e.q.Depth(context.Background()); n != big+small {
		t.Errorf("depth = %d, want %d", n, big+small)
	}
	if got := e.srv.MemoryHeld(); got != 0 {
		t.Errorf("budget still held: %d bytes", got)
	}
}

// sendBigNoFatal is sendBig for other goroutines: errors are replies.
func sendBigNoFatal(t *testing.T, addr, body string) string {
	c, err := netDial(addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	cl := &client{smtptest.New(t, c), t}
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"EHLO c.example.com\r\n", "250"}, {"MAIL FROM:<a@example.com>\r\n", "250"},
		{"RCPT TO:<" + listAddr + ">\r\n", "250"}, {"DATA\r\n", "354"}, {body + ".\r\n", "250"},
	} {
		if step.send != "" {
			if _, err := c.Write([]byte(step.send)); err != nil {
				return err.Error()
			}
		}
		got := cl.Read()
		if !strings.HasPrefix(got, step.want) || step.want == "250" && step.send == body+".\r\n" {
			return got
		}
	}
	return "unreachable"
}

// A session that waits for memory is not timed out for the wait: the
// time mxd spends not reading is not the client's. One session holds the
// whole budget for longer than the other's grace; the other, whose data
// is all sent, waits, and is queued once memory is free. (The holder is
// quiet for less than the few seconds after which it would be made to
// give its memory back.)
func TestBudgetWaitIsNotTheClientsTime(t *testing.T) {
	const grace = 250 * time.Millisecond
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.MemoryBudget = 2 * queue.ChunkSize
		c.DataGrace = grace
		c.MinDataRate = 1024
	})
	hog := startData(t, e.addr)
	hog.Send("Subject: hog\r\n\r\n" + strings.Repeat(strings.Repeat("h", 98)+"\r\n", 1000)) // 100 KB: 100 s of credit
	waitFor(t, "the budget used up", func() bool { return e.srv.MemoryHeld() == 2*queue.ChunkSize })
	waiter := startData(t, e.addr)
	waiter.Send(message("waited for memory") + ".\r\n")
	// Hold the memory past the waiter's grace and its few bytes' worth.
	until := time.Now().Add(4 * grace)
	waitFor(t, "three graces", func() bool { return time.Now().After(until) })
	hog.Send(".\r\n")
	if got := hog.Read(); !strings.HasPrefix(got, "250 ") {
		t.Errorf("session that held the memory: %q, want 250", got)
	}
	if got := waiter.Read(); !strings.HasPrefix(got, "250 ") {
		t.Errorf("session that waited for memory: %q, want 250", got)
	}
}

// The transaction log line of a duplicate names the transaction's own
// queue id (the one in its Received field) and the first copy's, so that
// the two can be joined.
func TestDuplicateLogLine(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c, _ := dial(t, e.addr)
	c.Expect("EHLO client.example.com", "250")
	first := c.SendMail("alice@example.com", []string{listAddr}, message("logged twice"))
	second := c.SendMail("alice@example.com", []string{listAddr}, message("logged twice"))
	id := strings.TrimPrefix(first, "250 2.0.0 queued as ")
	if second != first {
		t.Fatalf("replies %q and %q: want the first copy's id twice", first, second)
	}
	var dup string
	waitFor(t, "the duplicate's log line", func() bool {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "duplicate_of="+id) {
				dup = line
				return true
			}
		}
		return false
	})
	if strings.Contains(dup, "queue_id="+id) || !strings.Contains(dup, "queue_id=") {
		t.Errorf("duplicate's line %q: want its own queue_id, not the first copy's", dup)
	}
}
