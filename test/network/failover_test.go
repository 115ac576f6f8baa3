package network

import (
	"context"
	"time"

	"mxq/queue"
)

// The phases of the queue's Redis, named as the table shows them.
const (
	phaseSwitch = "redis switch-over"
	phaseKill   = "kill -9 redis primary"
	phaseBack   = "old primary back"
)

// redisPhases takes the queue's Redis through a planned switch-over, a
// kill -9 of the primary and the old primary's return, under the load;
// phase names each.
func (w *world) redisPhases(phase func(string)) RedisTimes {
	t := w.t
	t.Helper()
	var rt RedisTimes

	phase(phaseSwitch)
	time.Sleep(2 * time.Second) // mail flows through the primary
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	rep, err := w.q.Switchover(ctx, queue.SwitchoverOptions{})
	cancel()
	if err != nil {
		t.Fatalf("switch-over: %v", err)
	}
	rt.Switch = *rep
	t.Logf("switch-over %s → %s, writes paused %v", rep.From, rep.To, rep.Paused)
	time.Sleep(2 * time.Second)

	phase(phaseKill)
	var old *Redis
	waitUntil(t, 30*time.Second, "the primary to have both replicas", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		old = w.redis.Primary(ctx)
		return old != nil && connectedReplicas(ctx, old.Addr()) == 2
	})
	time.Sleep(2 * time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
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
	// replica of the new one. Until then min-replicas-to-write keeps it
	// from taking a write, and no client is sent to it.
	phase(phaseBack)
	start = time.Now()
	old.Start(t)
	w.redis.WaitReplica(t, old, p)
	rt.Rejoin = time.Since(start)
	t.Logf("%s replicates from %s after %v", old.Addr(), p.Addr(), rt.Rejoin)
	time.Sleep(2 * time.Second)
	return rt
}
