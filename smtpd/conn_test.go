package smtpd

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
)

// TestConnReadAhead checks that the read-ahead hands go-smtp exactly the
// bytes the client sent, in order, whatever the read sizes, and that it
// gives its buffer back once drained, so a session waiting for its client
// holds none.
func TestConnReadAhead(t *testing.T) {
	cfg := testConfig()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rnd := rand.New(rand.NewSource(1))
	var want []byte
	for len(want) < 200<<10 {
		want = append(want, bytes.Repeat([]byte{"ab.c"[rnd.Intn(4)]}, rnd.Intn(300))...)
		want = append(want, "\r\n"...)
	}
	sizes := make([]int, 64)
	for i := range sizes {
		sizes[i] = 1 + rnd.Intn(40<<10)
	}
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		// Uneven writes: some fill a read, some leave it short.
		for i, rest := 0, want; len(rest) > 0; i++ {
			n := min(len(rest), sizes[i%len(sizes)])
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(nc, &cfg)
	defer c.Close()
	var got []byte
	usedReadAhead := false
	for len(got) < len(want) {
		b := make([]byte, []int{4096, 1, 100, 4096, 20000}[rnd.Intn(5)])
		n, err := c.Read(b)
		got = append(got, b[:n]...)
		usedReadAhead = usedReadAhead || c.ahead.buf != nil
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes that differ from the %d sent", len(got), len(want))
	}
	if !usedReadAhead {
		t.Error("the read-ahead was never used")
	}
	if c.ahead.buf != nil {
		t.Errorf("a drained connection still holds its read-ahead buffer (%d unread)", c.ahead.j-c.ahead.i)
	}
	// The client has closed: the next read reports it.
	if _, err := c.Read(make([]byte, 4096)); err != io.EOF {
		t.Errorf("read after the client closed: %v, want EOF", err)
	}
}

// TestSniffAcrossReads: an HTTP request is recognised however its first
// bytes are split into reads ("GE", then "T / HTTP/1.1"), and an SMTP
// command that starts like one ("HELO" like "HEAD ") is not taken for one.
func TestSniffAcrossReads(t *testing.T) {
	cfg := testConfig()
	for _, tt := range []struct {
		parts  []string
		closed bool
	}{
		{[]string{"GE", "T / HTTP/1.1\r\n"}, true},
		{[]string{"P", "O", "ST /x HTTP/1.1\r\n"}, true},
		{[]string{"PRO", "XY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"}, true},
		{[]string{"HE", "LO client.example.com\r\n"}, false},
		{[]string{"E", "HLO client.example.com\r\n"}, false},
	} {
		client, server := net.Pipe()
		c := newConn(server, &cfg)
		go func() {
			for _, p := range tt.parts {
				client.Write([]byte(p))
			}
		}()
		go io.Copy(io.Discard, client) // the 554, if any
		buf := make([]byte, 64)
		var err error
		for i := 0; i < len(tt.parts) && err == nil; i++ {
			_, err = c.Read(buf)
		}
		if closed := err != nil; closed != tt.closed {
			t.Errorf("%q: closed %v (%v), want %v", tt.parts, closed, err, tt.closed)
		}
		client.Close()
		server.Close()
	}
}
