package smtpd

import (
	"errors"
	"io"
	"net"
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
// between commands; in DATA, the time in the rate bucket: the grace, plus
// what the bytes earn at the minimum rate, less the DATA time gone by,
// with at most the window saved up; pauses do not count; capped by the
// DATA timeout. A timeout in DATA fails every later read without reading;
// one between commands is passed on as it is.
func TestReadDeadlines(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	cfg := Config{CommandTimeout: 5 * time.Minute, DataGrace: 30 * time.Second, MinDataRate: 1000,
		DataRateWindow: time.Minute, DataTimeout: 2 * time.Minute}
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
		{name: "data: grace less 1 s, and 5000 bytes at 1000/s", read: readResult{n: 1000}, want: t0.Add(35 * time.Second), wantN: 1000},
		{name: "data: a pause moves it on", before: func() { resume := d.pause(); now = now.Add(time.Minute); resume() },
			read: readResult{n: 10_000_000}, want: t0.Add(time.Minute + 36*time.Second), wantN: 10_000_000},
		{name: "data: a burst saves up the window, no more", before: func() { now = now.Add(40 * time.Second) },
			read: readResult{n: 100_000}, want: t0.Add(2*time.Minute + time.Second), wantN: 100_000},
		{name: "data: the window, less the time gone by", before: func() { now = now.Add(29 * time.Second) },
			read: readResult{n: 100_000}, want: t0.Add(2*time.Minute + 41*time.Second), wantN: 100_000},
		{name: "data: capped by the DATA timeout", read: readResult{n: 1}, want: t0.Add(3 * time.Minute), wantN: 1},
		{name: "back to commands", before: func() { d.end(); now = t0.Add(time.Hour) },
			read: readResult{n: 7}, want: t0.Add(time.Hour + 5*time.Minute), wantN: 7},
		{name: "data too slow", before: func() { d.begin() },
			read: readResult{n: 3, err: os.ErrDeadlineExceeded}, want: t0.Add(time.Hour + 30*time.Second), wantN: 3, err: errDataSlowNet},
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
		if n, err := d.Read(make([]byte, 4096)); n != 0 || err != errDataSlowNet {
			t.Errorf("read after the DATA timeout: %d, %v; want 0, %v", n, err, errDataSlowNet)
		}
	}
	if below.calls != calls || len(rec.set) != sets {
		t.Errorf("after the DATA timeout: %d reads and %d deadlines below, want none", below.calls-calls, len(rec.set)-sets)
	}
	for _, ne := range []net.Error{errDataTimeoutNet, errDataSlowNet} {
		if !ne.Timeout() || !errors.Is(ne, errDataTimeout) {
			t.Errorf("%v is not a timeout: go-smtp would not end the session on it", ne)
		}
	}
}

// A read that times out at the DATA timeout, rather than for the rate,
// says so.
func TestReadDeadlinesDataTimeout(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	cfg := Config{CommandTimeout: time.Minute, DataGrace: time.Minute, MinDataRate: 1000, DataRateWindow: time.Minute, DataTimeout: 30 * time.Second}
	rec := &deadlineRecorder{}
	d := &readDeadlines{r: &scriptReader{results: []readResult{{err: os.ErrDeadlineExceeded}}}, conn: rec, cfg: &cfg, now: func() time.Time { return now }}
	d.begin()
	if _, err := d.Read(make([]byte, 10)); err != errDataTimeoutNet {
		t.Errorf("read past the DATA timeout: %v, want %v", err, errDataTimeoutNet)
	}
	if got, want := rec.set[0], t0.Add(30*time.Second); !got.Equal(want) {
		t.Errorf("deadline %v, want %v", got.Sub(t0), want.Sub(t0))
	}
}

// A session is a candidate for eviction while it reads DATA, once past
// evictMinAge, when it received less than it holds in the last
// pressureWindow of DATA time; never while paused. Evicted, its blocked
// read returns at once with replyMemoryPressure, the reads after it fail
// as on a closed connection, and nothing more is read.
func TestReadDeadlinesPressure(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	cfg := Config{CommandTimeout: time.Minute, DataGrace: time.Minute, MinDataRate: 1000, DataRateWindow: time.Minute, DataTimeout: 10 * time.Minute}
	below := &scriptReader{}
	rec := &deadlineRecorder{}
	d := &readDeadlines{r: below, conn: rec, cfg: &cfg, now: func() time.Time { return now }}
	read := func(n int) {
		t.Helper()
		below.results = append(below.results, readResult{n: n})
		if got, err := d.Read(make([]byte, n)); got != n || err != nil {
			t.Fatalf("read %d: %d, %v", n, got, err)
		}
	}
	check := func(what string, held int64, want bool) {
		t.Helper()
		if _, ok := d.pressure(held); ok != want {
			t.Errorf("%s: evictable %v, want %v", what, ok, want)
		}
	}
	check("between commands", 1<<20, false)
	d.begin()
	check("just begun", 1<<20, false)
	read(100_000)
	now = t0.Add(2 * time.Second)
	check("100 kB in 2 s, holding 64 KiB", 64<<10, false)
	check("100 kB in 2 s, holding 1 MiB", 1<<20, true)
	now = t0.Add(4 * time.Second)
	check("100 kB in 4 s, holding 96 KiB", 96<<10, false)
	check("100 kB in 4 s, holding 128 KiB", 128<<10, true)
	resume := d.pause()
	now = t0.Add(time.Minute)
	check("paused", 128<<10, false)
	resume()
	check("resumed: the pause is not DATA time", 96<<10, false)
	now = now.Add(3 * time.Second)
	check("silent for 7 s of DATA time", 64<<10, true)
	s1, _ := d.pressure(64 << 10)
	s2, _ := d.pressure(128 << 10)
	if s2 <= s1 {
		t.Errorf("score holding 128 KiB %v, not above holding 64 KiB %v", s2, s1)
	}
	read(70_000)
	check("70 kB just now, holding 64 KiB", 64<<10, false)

	// The eviction comes while the session is blocked in a read.
	sets := len(rec.set)
	evicted := false
	d.r = readerFunc(func([]byte) (int, error) {
		evicted = d.evict()
		return 0, os.ErrDeadlineExceeded
	})
	if _, err := d.Read(make([]byte, 10)); err != error(replyMemoryPressure) {
		t.Errorf("read blocked at the eviction: %v, want %v", err, replyMemoryPressure)
	}
	if !evicted {
		t.Fatal("evict refused")
	}
	if len(rec.set) != sets+2 || !rec.set[sets+1].Before(t0) {
		t.Errorf("deadlines %v: want the read's, then the eviction's in the past", rec.set[sets:])
	}
	check("evicted", 64<<10, false)
	if d.evict() {
		t.Error("evicted twice")
	}
	d.r = readerFunc(func([]byte) (int, error) {
		t.Error("read below after the eviction")
		return 0, io.EOF
	})
	for range 2 {
		if _, err := d.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after the eviction: %v, want %v", err, net.ErrClosed)
		}
	}

	d2 := &readDeadlines{r: below, conn: rec, cfg: &cfg, now: func() time.Time { return now }}
	if d2.evict() {
		t.Error("a session between commands was evicted")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
