package smtptest

import (
	"bufio"
	"net"
	"testing"
)

// Replies come back whole and as sent: a multi-line reply joined by
// "\n", and "" once the server has closed the connection.
func TestReplies(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("220 mx.example.org ESMTP\r\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
		c.Write([]byte("250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 10\r\n"))
	}()
	c, greeting := Dial(t, l.Addr().String())
	if greeting != "220 mx.example.org ESMTP" {
		t.Errorf("greeting %q", greeting)
	}
	if r := c.Cmd("EHLO client.example.com"); r != "250-mx.example.org\n250-PIPELINING\n250 SIZE 10" {
		t.Errorf("EHLO reply %q", r)
	}
	if line := <-got; line != "EHLO client.example.com\r\n" {
		t.Errorf("server read %q", line)
	}
	if r := c.Read(); r != "" {
		t.Errorf("after the server closed: %q, want \"\"", r)
	}
}
