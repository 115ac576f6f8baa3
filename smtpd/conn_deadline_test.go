package smtpd

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// scriptReader returns its results in turn, as the layers below would.
type scriptReader struct {
	results []readResult
	calls   int
}

type readResult struct {
	n   int
	err error
}

func (s *scriptReader) Read(b []byte) (int, error) {
	if s.calls == len(s.results) {
		return 0, io.EOF
	}
	r := s.results[s.calls]
	s.calls++
	return r.n, r.err
}

// deadlineRecorder records the read deadlines set on it.
type deadlineRecorder struct{ set []time.Time }

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// Each read gets the deadline of its phase: the command timeout from now
// between commands; in DATA, grace plus the time the bytes so far earn at
// the minimum rate, from the start of DATA moved on by the pauses, capped
// by the DATA timeout. A timeout in DATA fails every later read without
// reading; one between commands is passed on as it is.
func TestReadDeadlines(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	cfg := Config{CommandTimeout: 5 * time.Minute, DataGrace: 30 * time.Second, MinDataRate: 1000, DataTimeout: 10 * time.Minute}
	below := &scriptReader{}
	rec := &deadlineRecorder{}
	d := &readDeadlines{r: below, conn: rec, cfg: &cfg, now: func() time.Time { return now }}

	for _, step := range []struct {
		name   string
		before func()
		read   readResult // what the layer below returns
		want   time.Time  // the deadline set for the read
		wantN  int
		err    error
	}{
		{name: "command", read: readResult{n: 10}, want: t0.Add(5 * time.Minute), wantN: 10},
		{name: "command timeout passed on", before: func() { now = t0.Add(time.Minute) },
			read: readResult{err: os.ErrDeadlineExceeded}, want: t0.Add(6 * time.Minute), err: os.ErrDeadlineExceeded},
		{name: "command after a timeout", read: readResult{n: 4}, want: t0.Add(6 * time.Minute), wantN: 4},
		{name: "data: grace", before: func() { now = t0; d.begin(); now = t0.Add(time.Second) },
			read: readResult{n: 5000}, want: t0.Add(30 * time.Second), wantN: 5000},
		{name: "data: grace and 5000 bytes at 1000/s", read: readResult{n: 1000}, want: t0.Add(35 * time.Second), wantN: 1000},
		{name: "data: a pause moves it on", before: func() { d.pause(time.Minute) },
			read: readResult{n: 10_000_000}, want: t0.Add(time.Minute + 36*time.Second), wantN: 10_000_000},
		{name: "data: capped by the DATA timeout", read: readResult{n: 1}, want: t0.Add(time.Minute + 10*time.Minute), wantN: 1},
		{name: "back to commands", before: func() { d.end(); now = t0.Add(time.Hour) },
			read: readResult{n: 7}, want: t0.Add(time.Hour + 5*time.Minute), wantN: 7},
		{name: "data timeout", before: func() { d.begin() },
			read: readResult{n: 3, err: os.ErrDeadlineExceeded}, want: t0.Add(time.Hour + 30*time.Second), wantN: 3, err: errDataTimeoutNet},
	} {
		if step.before != nil {
			step.before()
		}
		below.results = append(below.results, step.read)
		sets := len(rec.set)
		n, err := d.Read(make([]byte, 4096))
		if n != step.wantN || !errors.Is(err, step.err) {
			t.Errorf("%s: read %d, %v; want %d, %v", step.name, n, err, step.wantN, step.err)
		}
		if len(rec.set) != sets+1 {
			t.Errorf("%s: %d deadlines set, want 1", step.name, len(rec.set)-sets)
			continue
		}
		if got := rec.set[sets]; !got.Equal(step.want) {
			t.Errorf("%s: deadline %v, want %v", step.name, got.Sub(t0), step.want.Sub(t0))
		}
	}

	// After the DATA timeout nothing is read or waited for, even once
	// DATA is over.
	calls, sets := below.calls, len(rec.set)
	d.end()
	for range 2 {
		if n, err := d.Read(make([]byte, 4096)); n != 0 || err != errDataTimeoutNet {
			t.Errorf("read after the DATA timeout: %d, %v; want 0, %v", n, err, errDataTimeoutNet)
		}
	}
	if below.calls != calls || len(rec.set) != sets {
		t.Errorf("after the DATA timeout: %d reads and %d deadlines below, want none", below.calls-calls, len(rec.set)-sets)
	}
	if ne := errDataTimeoutNet; !ne.Timeout() {
		t.Error("errDataTimeoutNet is not a timeout: go-smtp would not end the session on it")
	}
}
