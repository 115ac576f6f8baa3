package network

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// phasedT is a test's *testing.T that also notes every failure with the
// phase of the run it happened in, and, when the test has failed, says
// them all again as the test's last lines. A run prints a lot before it
// ends: the tails of every server's log (the lab's cleanup), Postfix's
// log. Without the list at the end, the one line that says what failed
// is somewhere above all that.
//
// Helpers that take a testing.TB get the phasedT, so their failures are
// noted too (waitUntil's time-outs, a server that does not start).
type phasedT struct {
	*testing.T

	mu       sync.Mutex
	phase    string
	failures []string
	// logs is where the lab saved every log of the run, if it failed.
	logs string
}

// newPhasedT wraps t. Its summary is t's first cleanup, so it runs
// last, after the lab has stopped its processes and printed their logs.
func newPhasedT(t *testing.T) *phasedT {
	p := &phasedT{T: t, phase: "setup"}
	t.Cleanup(p.summary)
	return p
}

// SetPhase names the phase that failures from now on belong to.
func (p *phasedT) SetPhase(name string) {
	p.mu.Lock()
	p.phase = name
	p.mu.Unlock()
}

// Phase is the phase set last.
func (p *phasedT) Phase() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.phase
}

// note keeps msg's first line for the summary: a message may carry a
// log or a command's output after it, which the summary does not repeat.
func (p *phasedT) note(msg string) {
	first, rest, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	if rest != "" {
		first += " […]"
	}
	if len(first) > 400 {
		first = first[:400] + "…"
	}
	p.mu.Lock()
	p.failures = append(p.failures, fmt.Sprintf("phase %q: %s", p.phase, first))
	p.mu.Unlock()
}

func (p *phasedT) Error(args ...any) {
	p.T.Helper()
	p.note(fmt.Sprintln(args...))
	p.T.Error(args...)
}

func (p *phasedT) Errorf(format string, args ...any) {
	p.T.Helper()
	p.note(fmt.Sprintf(format, args...))
	p.T.Errorf(format, args...)
}

func (p *phasedT) Fatal(args ...any) {
	p.T.Helper()
	p.note(fmt.Sprintln(args...))
	p.T.Fatal(args...)
}

func (p *phasedT) Fatalf(format string, args ...any) {
	p.T.Helper()
	p.note(fmt.Sprintf(format, args...))
	p.T.Fatalf(format, args...)
}

// summary lists the failures, each with its phase, when the test failed.
func (p *phasedT) summary() {
	if !p.Failed() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s FAILED", p.Name())
	switch len(p.failures) {
	case 0:
		b.WriteString(" (no failure came through the run's checks: see above)\n")
	default:
		fmt.Fprintf(&b, ", %d failure(s), each with the phase of the run it happened in:\n", len(p.failures))
		for _, f := range p.failures {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	if p.logs != "" {
		fmt.Fprintf(&b, "every log of the run: %s\n", p.logs)
	}
	p.T.Log("\n" + b.String())
}
