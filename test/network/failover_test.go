package network

import (
	"context"
	"errors"
	"time"

	"mxq/redisha"
)

// The phases of the queue's Redis, named as the table shows them.
const (
	phaseSwitch = "redis switch-over"
	phaseKill   = "kill -9 redis primary"
	phaseBack   = "old primary back"
	phaseTwice  = "back-to-back failovers"
)

// redisPhases takes the queue's Redis through a planned switch-over, a
// kill -9 of the primary, the old primary's return and two failovers in
// a row, under the load; phase names each. Which server is primary is
// always asked of the sentinels: they may fail over again on their own
// (a primary just promoted that answers late on a loaded machine looks
// down too), and the test follows them.
func (w *world) redisPhases(phase func(string)) RedisTimes {
	t := w.t
	t.Helper()
	var rt RedisTimes

	phase(phaseSwitch)
	w.redis.WaitHealthy(t)
	time.Sleep(2 * time.Second) // mail flows through the primary
	var rep *redisha.SwitchoverReport
	var err error
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rep, err = w.q.Redis().Switchover(ctx, redisha.SwitchoverOptions{})
		cancel()
		// A refusal changes nothing: the sentinels disagreed, or were
		// failing over on their own. Once they are settled, again.
		if errors.Is(err, redisha.ErrRefused) && try < 3 {
			t.Logf("switch-over refused (%v); again once the sentinels agree", err)
			w.redis.WaitHealthy(t)
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("switch-over: %v", err)
	}
	rt.Switch = *rep
	t.Logf("switch-over %s → %s, writes paused %v", rep.From, rep.To, rep.Paused)
	time.Sleep(2 * time.Second)

	phase(phaseKill)
	old := w.redis.WaitHealthy(t)
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	rt.InFlight, err = w.q.Depth(ctx)
	cancel()
	if err != nil {
		t.Fatalf("queue depth before the kill: %v", err)
	}
	start := time.Now()
	old.Kill()
	p := w.redis.WaitPrimary(t, old)
	rt.Failover = time.Since(start)
	rt.Killed, rt.NewPrimary = old.Addr(), p.Addr()
	t.Logf("kill -9 %s: %s primary after %v", old.Addr(), p.Addr(), rt.Failover)
	time.Sleep(2 * time.Second)

	// It starts as the primary it was, with its AOF; Sentinel makes it a
	// replica of the primary it names by then. Until then
	// min-replicas-to-write keeps it from taking a write, and no client
	// is sent to it.
	phase(phaseBack)
	start = time.Now()
	old.Start(t)
	p = w.redis.WaitRejoin(t, old)
	rt.Rejoin = time.Since(start)
	t.Logf("%s replicates from %s after %v", old.Addr(), p.Addr(), rt.Rejoin)
	time.Sleep(2 * time.Second)

	phase(phaseTwice)
	rt.Twice = w.backToBack()
	time.Sleep(2 * time.Second)
	return rt
}

// backToBack kills the primary with SIGKILL and, as soon as the
// sentinels have promoted a replica, kills that one too: the sentinels
// must fail over again, to the last server, while the first failover is
// still being completed. That server then has no replica, and
// min-replicas-to-write holds every write until one of the killed
// servers, started again as a crashed server would be, rejoins as its
// replica. Meanwhile mxd's sessions wait for the queue, and listd tries
// its writes again.
func (w *world) backToBack() TwiceTimes {
	t := w.t
	t.Helper()
	var tt TwiceTimes
	first := w.redis.WaitHealthy(t)
	time.Sleep(2 * time.Second)
	start := time.Now()
	first.Kill()
	second := w.redis.WaitPromoted(t, first)
	tt.Promoted = time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	tt.SecondReplicas = onlineReplicas(ctx, second.Addr())
	cancel()
	second.Kill()
	t.Logf("kill -9 %s, then %s, promoted %v after the first kill (with %d replicas online)",
		first.Host.Name, second.Host.Name, round(tt.Promoted), tt.SecondReplicas)
	third := w.redis.WaitPromoted(t, first, second)
	tt.Third = time.Since(start)
	first.Start(t)
	second.Start(t)
	w.redis.WaitPrimary(t, first, second)
	tt.Failover = time.Since(start)
	p := w.redis.WaitHealthy(t)
	tt.Healthy = time.Since(start)
	tt.Killed = []string{first.Addr(), second.Addr()}
	tt.Primary = p.Addr()
	t.Logf("%s promoted %v after the first kill; %s primary with a replica after %v, with both after %v",
		third.Host.Name, round(tt.Third), p.Host.Name, round(tt.Failover), round(tt.Healthy))
	return tt
}
