package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mxq/dnsctl"
)

// TestKilledProcess builds dnsctl, runs it against real DNS servers, Redis
// and receivers, and SIGKILLs it as soon as it reports that a phase is
// done: no deferred cleanup runs, the lease stays behind, the lock dies
// with the process. Run again, the same command continues from the phase
// it persisted and completes; a further run is harmless; after restore
// every server sends the original RRset byte for byte.
//
// The kill lands a little after the report (the process runs on while the
// test reads the line), so it may land in a later phase, or after the run
// ended; killInPhase then tries again, a bounded number of times, and
// fails if no kill lands in the phase under test. resume_test.go in
// package dnsctl stops a run exactly at each phase, in-process.
func TestKilledProcess(t *testing.T) {
	bin := buildDnsctl(t, t.TempDir())
	for _, tc := range []struct {
		sub   string       // the command killed: drain, or restore after a drain
		phase dnsctl.Phase // killed once it reports this phase done
		after string       // or once it reports this, in phase
	}{
		{sub: "drain", phase: dnsctl.PhaseLeased},
		{sub: "drain", phase: dnsctl.PhaseRemoving},
		// The UPDATE goes out right after the report: the kill lands
		// just before or just after it, and the next run must cope with
		// either (the test logs which), even with the UPDATE applied
		// after it read the RRset (dnsctl's TestUpdateLandedLate).
		{sub: "drain", phase: dnsctl.PhaseRemoving, after: "UPDATE on"},
		{sub: "drain", phase: dnsctl.PhaseRemoved},
		{sub: "drain", phase: dnsctl.PhasePropagated},
		{sub: "drain", phase: dnsctl.PhaseTTLWaited},
		{sub: "drain", phase: dnsctl.PhaseFlagged},
		{sub: "restore", phase: dnsctl.PhaseRestoring},
		{sub: "restore", phase: dnsctl.PhaseRestoring, after: "UPDATE on"},
		{sub: "restore", phase: dnsctl.PhaseRestored},
	} {
		done := "phase " + string(tc.phase) + " done"
		name := tc.sub + "/" + string(tc.phase)
		if tc.after != "" {
			done, name = tc.after, tc.sub+"/"+strings.Fields(tc.after)[0]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t, bin)
			original := l.wire()
			for srv, rrs := range original {
				if len(rrs) != 3 {
					t.Fatalf("%s sends %d MX records before the test, want 3: %q", srv, len(rrs), rrs)
				}
			}
			if tc.sub == "restore" {
				if r := l.run("drain"); r.exit != exitOK || !r.report(t).Safe {
					t.Fatalf("drain: exit %d, stdout %s", r.exit, r.stdout)
				}
			}

			st := killInPhase(t, l, tc.sub, tc.phase, done)
			t.Logf("killed %s after it reported %q; persisted phase: %s; the primary shows mx2: %v",
				tc.sub, done, st.Phase, slices.ContainsFunc(l.wire()[l.dns.Primary.Name], isMX2))

			again := l.run(tc.sub)
			if again.exit != exitOK {
				t.Fatalf("%s again: exit %d, stdout %s, stderr %q", tc.sub, again.exit, again.stdout, again.other)
			}
			checkContinued(t, tc.sub, st, again)
			twice := l.run(tc.sub)
			if twice.exit != exitOK || twice.has("UPDATE on") {
				t.Fatalf("%s a third time: exit %d, stdout %s, stderr %q", tc.sub, twice.exit, twice.stdout, twice.other)
			}

			if tc.sub == "drain" {
				if rep := twice.report(t); !rep.Safe || !twice.has("mx2.example.org. is already drained") {
					t.Errorf("drain after a finished drain: %s", twice.stdout)
				}
				drained := map[string][]string{}
				for srv, rrs := range original {
					drained[srv] = slices.DeleteFunc(slices.Clone(rrs), isMX2)
				}
				if diff := cmp.Diff(drained, l.wire()); diff != "" {
					t.Errorf("drained zone (-want +got)\n%s", diff)
				}
				if r := l.run("restore"); r.exit != exitOK {
					t.Fatalf("restore: exit %d, stdout %s, stderr %q", r.exit, r.stdout, r.other)
				}
			} else if rep := twice.report(t); !strings.HasPrefix(rep.Note, "nothing to restore") {
				t.Errorf("restore after a finished restore: %s", twice.stdout)
			}
			if diff := cmp.Diff(original, l.wire()); diff != "" {
				t.Errorf("restored zone is not the original (-want +got)\n%s", diff)
			}
			l.settled()
		})
	}
}

// killAttempts bounds the runs killInPhase starts.
const killAttempts = 5

// killInPhase runs dnsctl SUB, kills it once it reports done, and returns
// the state persisted, in phase. A kill that lands later (a later phase
// persisted, or the run over) tests less than the case says: the run is
// finished and undone (a drain restored, a restore drained again), and
// another is killed, at most killAttempts in all.
func killInPhase(t *testing.T, l *lab, sub string, phase dnsctl.Phase, done string) *dnsctl.State {
	t.Helper()
	undo := map[string]string{"drain": "restore", "restore": "drain"}[sub]
	for i := 1; ; i++ {
		k := l.start(sub, func(ev dnsctl.Event) bool {
			return ev.Phase == phase && strings.HasPrefix(ev.Msg, done)
		})
		st := l.state()
		landed := "after the run ended"
		switch {
		case !k.killed && (k.exit != exitOK || !k.has(done)):
			t.Fatalf("%s ended with exit %d before reporting %q", sub, k.exit, done)
		case k.killed && st == nil && sub == "drain":
			t.Fatalf("killed after %q, but no state is persisted", done)
		case k.killed && st == nil:
			landed = "after the state was cleared"
		case k.killed && st.Phase.Before(phase):
			t.Fatalf("killed after %q, but the persisted phase is %s", done, st.Phase)
		case k.killed && st.Phase == phase:
			return st
		case k.killed:
			landed = "in phase " + string(st.Phase)
		}
		if i == killAttempts {
			t.Fatalf("none of %d kills after %q landed in phase %s; the last landed %s", i, done, phase, landed)
		}
		t.Logf("the kill after %q landed %s; finishing, undoing and trying again", done, landed)
		for _, c := range []string{sub, undo} {
			if r := l.run(c); r.exit != exitOK {
				t.Fatalf("%s before another try: exit %d, stdout %s, stderr %q", c, r.exit, r.stdout, r.other)
			}
		}
	}
}

// checkContinued checks that the run after the kill took up the persisted
// maintenance instead of starting over, and finished it.
func checkContinued(t *testing.T, sub string, st *dnsctl.State, r result) {
	t.Helper()
	rep := r.report(t)
	if sub == "drain" {
		if want := "continuing the drain of " + st.Host + " from phase " + string(st.Phase); !r.has(want) || r.has("preflight ok") {
			t.Errorf("drain again did not continue: want %q and no new preflight", want)
		}
		if !rep.Safe || rep.Phase != dnsctl.PhaseDrained {
			t.Errorf("drain again: %s, want safe", r.stdout)
		}
	} else {
		if want := "restoring " + st.Host + " from phase " + string(st.Phase); !r.has(want) {
			t.Errorf("restore again did not continue: want %q", want)
		}
		if rep.Phase != dnsctl.PhaseRestored || !r.has("restored: "+st.Host) {
			t.Errorf("restore again: %s, want restored", r.stdout)
		}
	}
	// Past the UPDATE, a second one would fail on its prerequisite, or
	// worse, succeed against someone else's change.
	pastUpdate := (sub == "drain" && !st.Phase.Before(dnsctl.PhaseRemoved)) || st.Phase == dnsctl.PhaseRestored
	if pastUpdate && r.has("UPDATE on") {
		t.Errorf("%s again sent an UPDATE although the persisted phase %s is past it", sub, st.Phase)
	}
}

// isMX2 reports whether a record from lab.wire points to mx2.
func isMX2(rr string) bool { return strings.HasPrefix(rr, "mx2.example.org. ") }
