package liststest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mxq/internal/servertest"
)

// Sink is Postfix's smtp-sink run by a test: a real SMTP server that
// accepts every message and dumps each one to a file of its own.
type Sink struct {
	// Addr is where it listens, "127.0.0.1:PORT".
	Addr string
	dir  string
}

// StartSink starts smtp-sink on a free loopback port, dumping messages
// into a directory of the test's, and stops it when the test ends.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	bin := servertest.LookPath(t, "smtp-sink", "install it with `apt-get install postfix` (or run `make test`)")
	dir := t.TempDir()
	// smtp-sink refuses to run as root: run by root, it writes its dumps
	// as nobody (-u nobody); run by anyone else, as that user.
	openPath(dir)
	dumps := filepath.Join(dir, "dump")
	if err := os.Mkdir(dumps, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dumps, 0o777) // past the umask
	var lastErr error
	for range 5 {
		addr := "127.0.0.1:" + strconv.Itoa(servertest.FreePort(t))
		out := &servertest.Log{}
		// -d: one file per message, named by the template plus a random
		// suffix; 64: the listen backlog.
		args := []string{"-h", "sink.test", "-d", dumps + "/%H%M%S.", addr, "64"}
		if os.Geteuid() == 0 {
			args = append([]string{"-u", "nobody"}, args...)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if lastErr = waitGreeting(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("smtp-sink output:\n%s", out.String())
				}
			})
			return &Sink{Addr: addr, dir: dumps}
		}
		cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w\n%s", lastErr, out.String())
	}
	t.Fatalf("smtp-sink did not start: %v", lastErr)
	return nil
}

// waitGreeting waits until addr answers with an SMTP greeting, or the
// server exits (its port was taken meanwhile).
func waitGreeting(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && len(line) > 3 && line[:3] == "220" {
				return nil
			}
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		select {
		case <-exited:
			return fmt.Errorf("smtp-sink exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no greeting within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// Dumps returns the paths of the message dumps so far.
func (s *Sink) Dumps() []string {
	ents, _ := os.ReadDir(s.dir)
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(s.dir, e.Name()))
	}
	return out
}

// OpenMessage opens the message in dump file path as the client sent it,
// with LF line endings (smtp-sink has undone the dot-stuffing): the
// dump's own header fields (X-Client-Addr … and smtp-sink's Received)
// are skipped, and the empty line smtp-sink ends every dump with is left
// out. It reads the dump as
// it goes, so a big message is not held in memory. A dump that is not
// complete yet reads with an error.
func OpenMessage(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	// The dump's header: X-… lines, then a Received field whose
	// continuation lines start with a tab.
	inReceived := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: dump header: %w", path, err)
		}
		if inReceived && line[0] != '\t' {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(copyDumped(pw, br, line)) }()
			return readCloser{pr, func() error { pr.Close(); return f.Close() }}, nil
		}
		inReceived = inReceived || bytes.HasPrefix(line, []byte("Received:"))
	}
}

// copyDumped copies the dumped message from first and br to w, and leaves
// out the last (empty) line.
func copyDumped(w io.Writer, br *bufio.Reader, first []byte) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var held []byte // the previous line: the last one is not copied
	line := first
	for {
		if held != nil {
			if _, err := bw.Write(held); err != nil {
				return err
			}
		}
		held = append(held[:0], line...)
		var err error
		line, err = br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return fmt.Errorf("a line longer than %d bytes", br.Size())
		}
		if err == io.EOF && len(line) == 0 {
			if string(held) != "\n" {
				return fmt.Errorf("dump does not end with an empty line: %w", io.ErrUnexpectedEOF)
			}
			return bw.Flush()
		}
		if err != nil {
			return err
		}
	}
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
