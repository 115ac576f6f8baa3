package lists

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"mxq/queue"
)

// exTempFail is EX_TEMPFAIL of sysexits.h: "try again later".
const exTempFail = 75

// Exec runs a program once per recipient, without a shell, with the
// message on stdin and the envelope in its environment: SENDER,
// RECIPIENT, ORIGINAL_RECIPIENT (the address of the ORCPT parameter,
// RFC 3461 §4.2, as the record holds it, else the recipient) and
// QUEUE_ID, plus PATH and Env. Exit 0 is delivered,
// exit 75 (EX_TEMPFAIL) or running past Timeout is retried, any other exit
// rejects the recipient. The tail of stderr goes into the error, and so
// into the log and the dead letter.
type Exec struct {
	// Argv is the program's absolute path and its arguments.
	Argv []string
	// Timeout bounds one run. Default DefaultDestinationTimeout.
	Timeout time.Duration
	// Env is more of the program's environment, NAME=value each (see
	// CheckEnv). A PATH here replaces the default; the envelope's
	// variables (ExecEnvelope) cannot be set here: they are dropped.
	Env []string
}

func (e *Exec) String() string { return "exec " + strings.Join(e.Argv, " ") }

// maxStderr is how much of a program's stderr is kept.
const maxStderr = 4 << 10

// Deliver runs the program for rcpt.
func (e *Exec) Deliver(ctx context.Context, m *Message, rcpt string) error {
	if len(e.Argv) == 0 {
		return Permanent(errors.New("exec: no program"))
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultDestinationTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Argv[0], e.Argv[1:]...)
	body := &bodyInput{r: m.Body(), cmd: cmd}
	cmd.Stdin = body
	stderr := &tailBuffer{max: maxStderr}
	cmd.Stderr = stderr
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SENDER=" + m.Record.From,
		"RECIPIENT=" + rcpt,
		"ORIGINAL_RECIPIENT=" + originalRecipient(m, rcpt),
		"QUEUE_ID=" + m.Record.ID,
	}
	cmd.Env = withRouteEnv(e.Env, cmd.Env)
	// Its own process group, so that a timeout ends the program's
	// children too (mlmmj-receive forks mlmmj-process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if body.err != nil {
		return Temporary(fmt.Errorf("%s: %w", e.Argv[0], body.err))
	}
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	if msg != "" {
		msg = "; stderr: " + msg
	}
	if ctx.Err() != nil {
		return Temporary(fmt.Errorf("%s: stopped after %v (%v)%s", e.Argv[0], timeout, ctx.Err(), msg))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		// The program could not be started (missing, not executable):
		// a setup problem an operator fixes, so retry.
		return Temporary(fmt.Errorf("%s: %w", e.Argv[0], err))
	}
	if ee.ExitCode() == exTempFail {
		return Temporary(fmt.Errorf("%s: exit %d (EX_TEMPFAIL)%s", e.Argv[0], exTempFail, msg))
	}
	return Permanent(fmt.Errorf("%s: %v%s", e.Argv[0], ee, msg))
}

// originalRecipient returns the address of the ORCPT parameter (RFC 3461
// §4.2) of rcpt, or rcpt. The record holds it decoded from xtext already
// ("rfc822;a+b@x" for "rfc822;a+2Bb@x", see queue.Recipient), so it is
// used as it is: decoding it again would turn "+0A" or "%0A" into a line
// break in the program's environment, or "+00" into a NUL that exec
// refuses. A value with a control character or a line separator, which
// mxd refuses (a record written by an older one may hold it), or a type
// other than rfc822 and utf-8, gives rcpt.
func originalRecipient(m *Message, rcpt string) string {
	for _, r := range m.Record.Rcpts {
		if r.Addr != rcpt {
			continue
		}
		typ, addr, found := strings.Cut(r.Params["ORCPT"], ";")
		if !found || addr == "" || !strings.EqualFold(typ, "rfc822") && !strings.EqualFold(typ, "utf-8") || !queue.PrintableParam(addr) {
			break
		}
		return addr
	}
	return rcpt
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   bytes.Buffer
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t.cut {
		return "…" + t.b.String()
	}
	return t.b.String()
}

// bodyInput is a program's stdin: the message, read from the queue as the
// program takes it. When reading the queue fails, the program is killed
// before its stdin is closed, so that it never takes a cut message for a
// whole one.
type bodyInput struct {
	r   io.Reader
	cmd *exec.Cmd
	err error
}

func (b *bodyInput) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = fmt.Errorf("read the message: %w", err)
		if b.cmd.Process != nil {
			b.cmd.Cancel()
		}
	}
	return n, err
}
