package smtpd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/redisha"
)

// The switch-over under load: 20 sessions send through a server that
// reaches the queue over Sentinel while the operator's switch-over (the
// core of `mxq redis switchover`) moves the primary to a replica. No
// sender is refused (no 451: the sessions whose writes were held ride
// through to the new primary), and every message answered 250 is in the
// new primary's queue, once. Without WAIT (replicas = 0) too: the
// switch-over loses nothing a client did not wait for, where SENTINEL
// FAILOVER alone could.
func TestSwitchoverUnderLoad(t *testing.T) {
	for _, replicas := range []int{0, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			set := queuetest.StartSet(t, 2)
			qopt := queue.DefaultOptions()
			qopt.Timeout, qopt.Replicas, qopt.ReplicaTimeout = 2*time.Second, replicas, time.Second
			q := openQueue(t, set.URL(), qopt)
			e := serveQueue(t, q, "mx1.example.org", manySenders)
			s := startSenders(e.addr, 20)
			s.waitCount(t, 100)

			// The operator's mxq: a queue of its own.
			op := openQueue(t, set.URL(), queue.DefaultOptions())
			old, before := set.Primary(), s.count()
			rep, err := op.Redis().Switchover(context.Background(), redisha.SwitchoverOptions{Progress: func(st redisha.SwitchoverStep) {
				t.Logf("%s %-8s %s", st.Time.Format("15:04:05.000"), st.Step, st.Msg)
			}})
			if err != nil {
				s.halt()
				t.Fatal(err)
			}
			during := s.count() - before
			s.waitCount(t, s.count()+100)
			s.halt()
			if p := set.Primary(); p == old || p.Addr() != rep.To {
				t.Errorf("primary after the switch-over: %s; was %s, the report says %s", p.Addr(), old.Addr(), rep.To)
			}
			t.Logf("writes held %v, switch-over %v; %d messages answered 250 while it ran",
				rep.Paused.Round(time.Millisecond), rep.Took.Round(time.Millisecond), during)
			checkQueued(t, q, s)
		})
	}
}
