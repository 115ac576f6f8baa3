// Package network builds a test network of real hosts on one machine:
// one network namespace per host, joined by veth pairs to a bridge, each
// with its own address, running real DNS servers, Redis with Sentinel,
// mxd, listd, smtp-sink and a Postfix sending MTA. It needs root (ip
// netns); everything it creates is removed when the test ends, whether
// it passed or not.
//
// The hosts: dns1 (BIND, the primary) and dns2 (Knot, a secondary) serve
// the list domain; mx1, mx2 and mx3 run mxd; lists runs listd, the
// queue's first Redis primary, a sentinel and the smtp-sink listd
// delivers to (see Sink); redis2 and redis3 run a Redis replica and a
// sentinel each; sender runs Postfix. RedisSet says why Redis runs where
// it does.
//
// TestRollingMaintenance submits 10 messages a second to the sender's
// Postfix, which relays them by MX lookup, and meanwhile takes the
// network through its phases: each MX host drained with dnsctl,
// restarted and restored; kill -9 of an mxd and of listd; then the
// queue's Redis. At the end every message must have been delivered, and
// the table gives, per phase of submission, the messages, those lost,
// the sender's deferrals (its maillog's status=deferred lines), the
// duplicates (deliveries beyond the first), the delay from submission to
// the first delivery, and the max extra delay: the phase's longest
// beyond the run's median. This Postfix retries after 2 s; a real one
// waits 5 minutes or more, so a deferral counts as an outage seen by the
// sender, however short. The test takes 90–100 s, 11 s of it waiting for
// the old primary to rejoin and 20 s for the consumer-down alert.
//
// # What the operator sees
//
// The lists host also runs `mxq exporter` and a real prometheus that
// scrapes every mxd, listd and the exporter once a second, with the
// shipped rules (docs/examples/alerts.yml) loaded and evaluated once a
// second. Time is scaled (TimeScale): every rule's `for:` and the
// exporter's -reader-idle are divided by 10, so the consumer-down alert
// waits 12 s instead of 2 minutes; thresholds on values are as shipped.
// The run reads Prometheus's /api/v1/alerts four times a second and
// prints, per phase, the alerts seen firing. It fails if any alert fires
// while an MX host is drained, restarted and restored, and in the
// kill -9 listd phase listd stays down until MxqNothingConsumes fires:
// not before its `for:`, and within reader idle + `for:` + 8 s of the
// kill; it must clear within 30 s of listd's start. In two runs it fired
// 18.6–19.3 s after the kill (6 s + 12 s) and cleared 1.0–2.0 s after
// the start; no other alert fired in any phase, kill -9 of an mxd (down
// 3 s) and the failovers included. The run then draws the example
// dashboard from this Prometheus (drawDashboard; docs/dashboard.svg).
//
// # The queue's Redis under load
//
// Redis runs as docs/redis.md deploys it for high availability: a
// primary, two replicas and three sentinels (down-after-milliseconds
// 1000), min-replicas-to-write 1 and appendfsync always on every data
// server. Every mxd, listd and dnsctl is given the Sentinel URL, and mxd
// waits for one replica before it answers 250 (replicas = 1). Three
// phases:
//
//   - redis switch-over: the primary moves to a replica through
//     queue.Switchover, what `mxq redis switchover` runs (pause writes,
//     wait for the replicas, SENTINEL FAILOVER, REPLICAOF, unpause);
//   - kill -9 redis primary: SIGKILL to the primary's redis-server; the
//     sentinels promote a replica;
//   - old primary back: the killed server starts again as the primary it
//     was, with its AOF; Sentinel makes it a replica of the new primary,
//     about 11 s later (Sentinel lets a server it saw change role settle
//     for 8 s first). Meanwhile min-replicas-to-write keeps it from
//     taking a write, and the sentinels send no client to it.
//
// Four runs on one machine (two CPUs, shared with other work):
//
//	phase                  lost  deferrals  duplicates  max extra delay  target
//	redis switch-over      0     0          0           1.13–1.53 s      0, 0, 0, ≤ 2 s
//	kill -9 redis primary  0     0          0           2.68–2.88 s      0, 0, ≤ in flight, ≤ failover + 2 s
//	old primary back       0     0          0           0.16–0.39 s
//
// The switch-over paused writes for 1.1–1.3 s: Sentinel sees its
// promotion of the replica on its next INFO, once a second during a
// failover, and mxd finds the new primary only through Sentinel. The
// failover took 2.3–2.4 s from the kill until the new primary had a
// replica again: 1 s until the sentinels take the primary as down, the
// vote, the promotion seen on the next INFO, and the other replica's
// resync. mxd retries its enqueue at least once a second, listd its
// reads with a back-off that doubles up to 5 s. 0 messages were queued
// and unacknowledged at the kill in these runs; a delivery whose
// acknowledgement the kill loses is made again when its lease (5 s)
// runs out, and counts as a duplicate.
//
// The restart of a single Redis without Sentinel is its own scenario
// (TestRedisRestartRideThrough in package smtpd): here a primary gone
// for 2 s is a failover.
package network
