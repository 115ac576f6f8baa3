package smtpd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// idleTest is an idleCloser over one end of a pipe, with the reply buffer
// and STARTTLS watch of a conn; client is the other end.
type idleTest struct {
	ic     *idleCloser
	rb     *replyBuffer
	tlsw   *startTLSWatch
	client net.Conn
}

func newIdleTest(t *testing.T) *idleTest {
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	it := &idleTest{client: client}
	it.rb = &replyBuffer{w: server, timeout: 5 * time.Second}
	it.tlsw = &startTLSWatch{w: it.rb}
	it.ic = &idleCloser{conn: server, replies: it.rb, tlsw: it.tlsw}
	it.rb.r = it.ic
	return it
}

// read starts a session's read through the reply buffer, and returns once
// the session waits in it.
func (it *idleTest) read(t *testing.T, r io.Reader) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 64))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		it.ic.mu.Lock()
		reading := it.ic.reading
		it.ic.mu.Unlock()
		if reading {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatal("the read never reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
}

// clientGets reads what the client receives until the connection closes.
func clientGets(c io.Reader) <-chan string {
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	return got
}

const bye = "421 4.3.2 bye\r\n"

// A session is closed only while it waits for the client outside a
// transaction; it then gets the last reply in plaintext before STARTTLS,
// nothing in the handshake, and its blocked read fails as closed.
func TestIdleCloser(t *testing.T) {
	t.Run("not reading", func(t *testing.T) {
		it := newIdleTest(t)
		if it.ic.closeIfIdle(bye) {
			t.Error("closed while the session was not reading")
		}
	})
	t.Run("in a transaction", func(t *testing.T) {
		it := newIdleTest(t)
		it.ic.setTx(true)
		done := it.read(t, it.rb)
		if it.ic.closeIfIdle(bye) {
			t.Error("closed in a transaction")
		}
		it.client.Write([]byte("RSET\r\n"))
		if err := <-done; err != nil {
			t.Errorf("the read: %v", err)
		}
	})
	for _, tt := range []struct {
		name    string
		written []string // by go-smtp before the read
		want    string   // what the client gets
	}{
		{"idle", []string{"220 mx ESMTP\r\n"}, "220 mx ESMTP\r\n" + bye},
		{"with a reply held", []string{"220 mx ESMTP\r\n", "250 2.0.0 queued\r\n"}, "220 mx ESMTP\r\n250 2.0.0 queued\r\n" + bye},
		{"in the TLS handshake", []string{"220 mx ESMTP\r\n", "220 2.0.0 Ready to start TLS\r\n"}, "220 mx ESMTP\r\n220 2.0.0 Ready to start TLS\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			it := newIdleTest(t)
			got := clientGets(it.client)
			for _, w := range tt.written {
				it.tlsw.Write([]byte(w))
			}
			done := it.read(t, it.rb)
			if !it.ic.closeIfIdle(bye) {
				t.Fatal("not closed")
			}
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Errorf("the blocked read: %v, want %v", err, net.ErrClosed)
			}
			if g := <-got; g != tt.want {
				t.Errorf("client got %q, want %q", g, tt.want)
			}
			if _, err := it.rb.Read(make([]byte, 64)); err != errDataTimeoutNet {
				t.Errorf("read after the close: %v, want %v", err, errDataTimeoutNet)
			}
			if !it.ic.closeIfIdle(bye) {
				t.Error("a second closeIfIdle says the session is open")
			}
		})
	}
	t.Run("in TLS", func(t *testing.T) {
		it := newIdleTest(t)
		// The TLS layer reads and writes through the layers, as go-smtp's
		// does through a conn.
		layered := &layeredConn{Conn: it.ic.conn, r: it.rb, w: it.tlsw}
		it.tlsw.Write([]byte("220 mx ESMTP\r\n"))
		it.tlsw.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
		plain := make([]byte, len("220 mx ESMTP\r\n220 2.0.0 Ready to start TLS\r\n"))
		hs := make(chan error, 1)
		srv := tls.Server(layered, &tls.Config{Certificates: []tls.Certificate{testCert(t)}})
		go func() { hs <- srv.Handshake() }()
		if _, err := io.ReadFull(it.client, plain); err != nil {
			t.Fatal(err)
		}
		cli := tls.Client(it.client, &tls.Config{InsecureSkipVerify: true})
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-hs; err != nil {
			t.Fatal(err)
		}
		it.ic.setTLSConn(srv)
		got := clientGets(cli) // a clean close_notify ends it without error
		done := it.read(t, srv)
		if !it.ic.closeIfIdle(bye) {
			t.Fatal("not closed")
		}
		<-done
		if g := <-got; g != bye {
			t.Errorf("client got %q in TLS, want %q", g, bye)
		}
	})
	t.Run("refused", func(t *testing.T) {
		it := newIdleTest(t)
		got := clientGets(it.client)
		it.ic.refuse("554 5.7.0 not SMTP\r\n")
		if g := <-got; g != "554 5.7.0 not SMTP\r\n" {
			t.Errorf("client got %q", g)
		}
		if !it.ic.closeIfIdle(bye) {
			t.Error("closeIfIdle says a refused session is open")
		}
		if _, err := it.ic.Read(make([]byte, 64)); err != errDataTimeoutNet {
			t.Errorf("read after the refusal: %v, want %v", err, errDataTimeoutNet)
		}
	})
}

// layeredConn reads and writes through layers above its socket.
type layeredConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c *layeredConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *layeredConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// testCert is a self-signed certificate for mx.example.org.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
