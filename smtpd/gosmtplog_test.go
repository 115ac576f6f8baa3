package smtpd

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A panic that go-smtp recovers in a session reaches the log as an
// error, stack and all; a connection that ended in a read error stays at
// debug, since the session logs it itself.
func TestGoSMTPLog(t *testing.T) {
	var buf bytes.Buffer
	l := goSMTPLog{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Printf("error handling %v: %s", "127.0.0.1:4000", "read: connection reset by peer")
	if buf.Len() != 0 {
		t.Errorf("a read error logged at info or above: %s", buf.String())
	}
	l.Printf("panic serving %v: %v\n%s", "127.0.0.1:4000", "index out of range", "goroutine 7 [running]:\nmxq/smtpd.(*session).Data")
	if out := buf.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "index out of range") || !strings.Contains(out, "(*session).Data") {
		t.Errorf("a panic logged as %q, want an error with its value and stack", out)
	}
}
