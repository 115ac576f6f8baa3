package smtpd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// RSET in the middle of a BDAT transfer, with the next transaction in the
// same write: the aborted transfer must end before the session is reset,
// nothing may be queued without its sender and recipients, and every reply
// must match the log.
func TestRsetDuringBdat(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	queued := 0
	for i := range 20 {
		for _, again := range []bool{true, false} {
			c := greeted(t, e.addr, false)
			body := message(fmt.Sprintf("rset %d %v", i, again))
			in := envelope + "BDAT 5\r\n12345RSET\r\n"
			want := []string{"250", "250", "250 2.0.0", "250 2.0.0"}
			if again {
				in += envelope
				want = append(want, "250", "250", "250 2.0.0 queued as")
				queued++
			} else {
				want = append(want, "502 5.5.1") // no transaction after RSET
			}
			c.Send(in + fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
			for _, w := range want {
				if got := c.Read(); !strings.HasPrefix(got, w) {
					t.Fatalf("again=%v: got %q, want %s", again, got, w)
				}
			}
			c.Expect("QUIT", "221")
		}
	}
	waitFor(t, "sessions to end", func() bool { return e.srv.Sessions() == 0 })
	recs, err := e.q.Peek(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != queued {
		t.Errorf("%d records, want %d", len(recs), queued)
	}
	for _, r := range recs {
		if r.From != "a@evil.test" || len(r.Rcpts) != 1 {
			t.Errorf("record %s from %q to %v, want a@evil.test to one list", r.ID, r.From, r.Rcpts)
		}
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "code=250"); n != queued {
		t.Errorf("%d transactions logged with 250, want the %d the client saw", n, queued)
	}
	if n := strings.Count(logs, "code="); n != queued {
		t.Errorf("%d transactions logged with a code, want %d: the aborted transfers got no reply", n, queued)
	}
	if n := strings.Count(logs, "msg=\"transaction aborted\""); n != 40 {
		t.Errorf("%d aborted transfers logged, want 40", n)
	}
}
