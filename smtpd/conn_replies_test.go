package smtpd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// eventLog records, in order, what reached the socket and the layer
// below: "write:<bytes>", "deadline" and "read".
type eventLog struct {
	events   []string
	writeErr error
}

func (l *eventLog) Write(b []byte) (int, error) {
	l.events = append(l.events, "write:"+string(b))
	if l.writeErr != nil {
		return 0, l.writeErr
	}
	return len(b), nil
}

func (l *eventLog) SetWriteDeadline(t time.Time) error {
	if !t.After(time.Now()) {
		l.events = append(l.events, "deadline in the past")
	}
	l.events = append(l.events, "deadline")
	return nil
}

func (l *eventLog) Read(b []byte) (int, error) {
	l.events = append(l.events, "read")
	return 0, nil
}

// Replies are held until the session reads, then sent in one write with
// a write deadline, before the read; a long group is sent once it reaches
// replyBufferMax, without waiting for the read.
func TestReplyBuffer(t *testing.T) {
	long := strings.Repeat("250-x\r\n", replyBufferMax/7+1)
	for _, tt := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"nothing held", nil, []string{"read"}},
		{"one reply", []string{"220 mx ESMTP\r\n"}, []string{"deadline", "write:220 mx ESMTP\r\n", "read"}},
		{"a pipelined group", []string{"250 a\r\n", "250 b\r\n", "354 c\r\n"},
			[]string{"deadline", "write:250 a\r\n250 b\r\n354 c\r\n", "read"}},
		{"over the limit", []string{"250 a\r\n", long, "250 b\r\n"},
			[]string{"deadline", "write:250 a\r\n" + long, "deadline", "write:250 b\r\n", "read"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &eventLog{}
			rb := &replyBuffer{r: l, w: l, timeout: time.Minute}
			for _, w := range tt.writes {
				if n, err := rb.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			rb.Read(make([]byte, 10))
			if diff := cmp.Diff(tt.want, l.events); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}

	// A reply that cannot be sent fails the read, which then does not
	// wait for the client.
	l := &eventLog{writeErr: errors.New("broken pipe")}
	rb := &replyBuffer{r: l, w: l, timeout: time.Minute}
	rb.Write([]byte("250 a\r\n"))
	if _, err := rb.Read(make([]byte, 10)); err != l.writeErr {
		t.Errorf("read with a failed write: %v, want %v", err, l.writeErr)
	}
	if diff := cmp.Diff([]string{"deadline", "write:250 a\r\n"}, l.events); diff != "" {
		t.Errorf("failed write (-want +got)\n%s", diff)
	}
	// Flush sends what is held without reading.
	l = &eventLog{}
	rb = &replyBuffer{r: l, w: l, timeout: time.Minute}
	rb.Write([]byte("354 go ahead\r\n"))
	rb.Flush()
	rb.Flush()
	if diff := cmp.Diff([]string{"deadline", "write:354 go ahead\r\n"}, l.events); diff != "" {
		t.Errorf("Flush (-want +got)\n%s", diff)
	}
}
