package smtpd_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mxq/queue"
	"mxq/smtpd"
)

// Sessions that hold memory and send little cannot keep a small message
// waiting: from many addresses, each at the per-address cap, they fill
// the whole budget and go quiet; a sender from another address is
// answered 250 while they are still connected, and the ones that had to
// give their memory back are answered 451 4.3.2 and closed. The
// attackers stay quiet for as long as the test lasts; the sender's wait
// does not depend on it.
func TestMemoryHoldersGiveWay(t *testing.T) {
	const perIP, addrs = 20, 2 // the default per-address cap
	hold := strings.Repeat("X-Filler: "+strings.Repeat("h", 60)+"\r\n", 90<<10/72)
	for _, tt := range []struct {
		name    string
		holds   int64 // what each attacker comes to hold
		start   string
		trickle string // sent again and again, if any
	}{
		// DATA, then a header section that never ends: 90 KiB, held
		// whole in a block doubled (to 128 KiB less 32 bytes).
		{name: "header sections", holds: 2 * queue.ChunkSize, start: "DATA\r\n", trickle: ""},
		// DATA, a header, then the body a line at a time, faster than
		// min_data_rate: one block (64 KiB less 16 bytes).
		{name: "trickled bodies", holds: queue.ChunkSize, start: "DATA\r\nFrom: a@example.com\r\n\r\n",
			trickle: strings.Repeat("b", 98) + "\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
				c.MemoryBudget = perIP * addrs * tt.holds
			})
			var attackers []*attacker
			for a := range addrs {
				for range perIP {
					at := attack(t, e.addr, fmt.Sprintf("127.0.0.%d", 2+a), tt.start)
					if tt.trickle == "" {
						at.send(hold)
					}
					attackers = append(attackers, at)
				}
			}
			stop := make(chan struct{})
			defer close(stop)
			if tt.trickle != "" {
				go trickle(attackers, tt.trickle, stop)
			}
			waitFor(t, "the attackers to fill the budget", func() bool { return e.srv.MemoryHeld() == perIP*addrs*tt.holds })

			if got := sendPatiently(t, e.addr, message("small, behind "+tt.name)); !strings.HasPrefix(got, "250 ") {
				t.Fatalf("small message behind %s: %q, want 250", tt.name, got)
			}
			if n := e.srv.Sessions(); n < perIP*addrs/2 {
				t.Errorf("%d sessions left when the small message was queued: the attackers went away rather than gave way", n)
			}
			// The first attacker to be answered is one that gave its
			// memory back; nobody else was answered at all.
			select {
			case r := <-attackerReplies(attackers):
				if !strings.HasPrefix(r, "451 4.3.2 ") {
					t.Errorf("attacker answered %q, want 451 4.3.2", r)
				}
			case <-time.After(time.Minute):
				t.Fatal("no attacker was answered")
			}
			for _, at := range attackers {
				if r := at.reply(); r != "" && !strings.HasPrefix(r, "451 4.3.2 ") {
					t.Errorf("attacker answered %q, want 451 4.3.2 or nothing yet", r)
				}
			}
		})
	}
}

// A session sending with BDAT that holds memory and goes quiet in the
// middle of a chunk gives it back too, answered 451 4.3.2.
func TestMemoryHolderBDAT(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MemoryBudget = 2 * queue.ChunkSize })
	body := "From: a@example.com\r\n\r\n" + strings.Repeat(strings.Repeat("b", 98)+"\r\n", 700)
	at := attack(t, e.addr, "127.0.0.2", fmt.Sprintf("BDAT %d LAST\r\n", len(body)+1000))
	at.send(body)
	waitFor(t, "the attacker to fill the budget", func() bool { return e.srv.MemoryHeld() == 2*queue.ChunkSize })
	if got := sendPatiently(t, e.addr, message("small, behind BDAT")); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("small message behind a BDAT chunk: %q, want 250", got)
	}
	select {
	case r := <-attackerReplies([]*attacker{at}):
		if !strings.HasPrefix(r, "451 4.3.2 ") {
			t.Errorf("attacker answered %q, want 451 4.3.2", r)
		}
	case <-time.After(time.Minute):
		t.Fatal("the attacker was not answered")
	}
}

// A session in TLS that holds memory and goes quiet gives it back too:
// eviction reaches the socket under the TLS layer, and the 451 4.3.2
// goes back through TLS.
func TestMemoryHolderTLS(t *testing.T) {
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "mx1.example.org")
	store, err := smtpd.NewCertStore(smtpd.CertFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) {
		c.TLS = store.TLSConfig()
		c.MemoryBudget = 2 * queue.ChunkSize
	})
	at, _ := dial(t, e.addr)
	at.Expect("EHLO attacker.example", "250")
	at.StartTLS(&tls.Config{InsecureSkipVerify: true}, "")
	at.Expect("EHLO attacker.example", "250")
	at.Expect("MAIL FROM:<m@example.com>", "250")
	at.Expect("RCPT TO:<"+listAddr+">", "250")
	at.Expect("DATA", "354")
	at.Send(strings.Repeat("X-Filler: "+strings.Repeat("h", 60)+"\r\n", 90<<10/72))
	waitFor(t, "the attacker to fill the budget", func() bool { return e.srv.MemoryHeld() == 2*queue.ChunkSize })
	if got := sendPatiently(t, e.addr, message("small, behind TLS")); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("small message behind a session in TLS: %q, want 250", got)
	}
	if got := at.Read(); !strings.HasPrefix(got, "451 4.3.2 ") {
		t.Errorf("attacker in TLS answered %q, want 451 4.3.2", got)
	}
}

// A refused message holds no memory while its sender takes its time:
// a header section over max_header_bytes that never ends gives its
// memory back at once, and is answered 552 5.3.4 at the end of data.
func TestRefusedDataHoldsNoMemory(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := startData(t, e.addr)
	c.Send(strings.Repeat("X-Filler: "+strings.Repeat("h", 60)+"\r\n", 300<<10/72))
	waitFor(t, "the header section's memory back", func() bool { return e.srv.MemoryHeld() == 0 && e.srv.Sessions() == 1 })
	c.Send(strings.Repeat("more\r\n", 100) + "\r\n.\r\n")
	if got := c.Read(); !strings.HasPrefix(got, "552 5.3.4") {
		t.Errorf("header section over the limit: %q, want 552 5.3.4", got)
	}
}

// attacker is a session from its own loopback address that takes the
// memory it can and then sends little.
type attacker struct {
	t       *testing.T
	conn    net.Conn
	replies chan string // the first reply after the data began
}

// attack opens a session from src to the 354 of a transaction (or, for
// BDAT, to the chunk) and sends start.
func attack(t *testing.T, addr, src, start string) *attacker {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect from %s: %v", src, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"EHLO attacker.example\r\n", "250"}, {"MAIL FROM:<m@example.com>\r\n", "250"},
		{"RCPT TO:<" + listAddr + ">\r\n", "250"},
	} {
		if step.send != "" {
			io.WriteString(conn, step.send)
		}
		if r := readReply(br); !strings.HasPrefix(r, step.want) {
			t.Fatalf("attacker from %s: %q after %q, want %s", src, r, step.send, step.want)
		}
	}
	io.WriteString(conn, start)
	if strings.HasPrefix(start, "DATA") {
		if r := readReply(br); !strings.HasPrefix(r, "354") {
			t.Fatalf("attacker from %s: %q to DATA", src, r)
		}
	}
	conn.SetDeadline(time.Time{})
	at := &attacker{t: t, conn: conn, replies: make(chan string, 1)}
	go func() { at.replies <- readReply(br) }()
	return at
}

func (a *attacker) send(s string) {
	a.t.Helper()
	a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(a.conn, s); err != nil {
		a.t.Fatal(err)
	}
}

// reply is the attacker's reply if one came, else "".
func (a *attacker) reply() string {
	select {
	case r := <-a.replies:
		a.replies <- r
		return r
	default:
		return ""
	}
}

// attackerReplies delivers the first reply any of attackers gets.
func attackerReplies(attackers []*attacker) <-chan string {
	first := make(chan string, len(attackers))
	for _, a := range attackers {
		go func() {
			r := <-a.replies
			a.replies <- r
			first <- r
		}()
	}
	return first
}

// trickle sends line to each attacker every 50 ms (2 kB/s, above the
// default min_data_rate) until stop is closed; an attacker whose
// connection is closed is left alone.
func trickle(attackers []*attacker, line string, stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	gone := make([]bool, len(attackers))
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for i, a := range attackers {
			if gone[i] {
				continue
			}
			a.conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := io.WriteString(a.conn, line); err != nil {
				gone[i] = true
			}
		}
	}
}

// sendPatiently sends body in a session of its own and returns the reply
// to the end of data, waiting for it up to 20 s: several times what mxd
// needs to find memory for it (the attackers' first second or five of
// DATA), less than the attackers would keep it waiting otherwise (a
// trickled block fills in 32 s, a header section is cut for its rate
// after 2 minutes).
func sendPatiently(t *testing.T, addr, body string) string {
	t.Helper()
	c := startData(t, addr)
	c.Send(body + ".\r\n")
	c.Conn().SetReadDeadline(time.Now().Add(20 * time.Second))
	return readReply(bufio.NewReader(c.Conn()))
}

// readReply reads one reply, its lines joined by "\n"; "ERR" and the
// error if it cannot.
func readReply(br *bufio.Reader) string {
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "ERR " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// A big message streamed at an ordinary speed is never the one made to
// give its memory back: 31 MiB (max_message_bytes is 32 MiB) through a
// budget that quiet sessions have filled is queued, and they are the ones
// answered 451 4.3.2.
func TestBigMessageAmongHolders(t *testing.T) {
	const holders = 8
	e := newEnv(t, nil, "mx1.example.org", func(c *setup) { c.MemoryBudget = holders * 2 * queue.ChunkSize })
	var attackers []*attacker
	for range holders {
		at := attack(t, e.addr, "127.0.0.2", "DATA\r\n")
		at.send(strings.Repeat("X-Filler: "+strings.Repeat("h", 60)+"\r\n", 90<<10/72))
		attackers = append(attackers, at)
	}
	waitFor(t, "the attackers to fill the budget", func() bool { return e.srv.MemoryHeld() == holders*2*queue.ChunkSize })
	c := startData(t, e.addr)
	c.Send(bigBody("big among holders", 31<<20) + ".\r\n")
	c.Conn().SetReadDeadline(time.Now().Add(time.Minute))
	if got := readReply(bufio.NewReader(c.Conn())); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("31 MiB among quiet sessions: %q, want 250", got)
	}
	// The quiet ones are all answered in the end: those that gave way
	// 451 4.3.2, the others 451 4.4.2 once quiet for data_rate_window.
	gaveWay := 0
	for _, at := range attackers {
		select {
		case r := <-at.replies:
			switch {
			case strings.HasPrefix(r, "451 4.3.2 "):
				gaveWay++
			case !strings.HasPrefix(r, "451 4.4.2 "):
				t.Errorf("attacker answered %q, want 451 4.3.2 or 4.4.2", r)
			}
		case <-time.After(time.Minute):
			t.Fatal("an attacker was not answered")
		}
	}
	if gaveWay == 0 {
		t.Error("no attacker gave its memory back to the big message")
	}
}
