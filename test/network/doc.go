// Package network builds a test network of real hosts on one machine:
// one network namespace per host, joined by veth pairs to a bridge, each
// with its own address, running real DNS servers, Redis with Sentinel,
// mxd, listd, smtp-sink and a Postfix sending MTA. It needs root (ip
// netns); everything it creates is removed when the test ends, whether
// it passed or not.
//
// The hosts: dns1 (BIND, the primary) and dns2 (Knot, a secondary) serve
// the list domain; mx1, mx2 and mx3 run mxd and an rspamd each (below);
// lists runs listd, the
// queue's first Redis primary, a sentinel and the smtp-sink listd
// delivers to (see Sink); redis2 and redis3 run a Redis replica and a
// sentinel each; sender runs Postfix. RedisSet says why Redis runs where
// it does.
//
// TestRollingMaintenance submits 10 messages a second to the sender's
// Postfix, which relays them by MX lookup, and meanwhile takes the
// network through its phases: each MX host drained with dnsctl,
// restarted and restored; a certificate rollover; a restart of every
// rspamd; kill -9 of an mxd and of listd; then the queue's Redis. One
// message in ten (SpamEvery) is spam (below). At the end every
// legitimate message must have been delivered, and the table gives, per
// phase of submission, the legitimate messages, those lost, the sender's
// deferrals of them (its maillog's status=deferred lines), the
// duplicates (deliveries beyond the first), the spam sent and the spam
// refused, the delay from submission to
// the first delivery, and the max extra delay: the phase's longest
// beyond the run's median. This Postfix retries after 2 s; a real one
// waits 5 minutes or more, so a deferral counts as an outage seen by the
// sender, however short. The test takes 120–190 s on a loaded machine
// (two CPUs shared with other work), 5 s of it restarting rspamd, 11 s of it waiting for the old
// primary to rejoin, 20 s for the consumer-down alert and 20 s (40 s
// when the sentinels split their vote) for the back-to-back failovers;
// building the commands first takes 15–100 s more.
//
// # Spam and rspamd
//
// Every mxd has a milter, as docs/filtering.md deploys it: an rspamd on
// its own host (internal/rspamd's configuration: modules that use the
// network off), given in `milters`. It listens on its host's address
// rather than on loopback only so that the test, outside the namespace,
// sees it accept connections. The three start first, in the background,
// beside DNS and Redis (each takes about 25 s to compile its list of
// top-level domains and its regular expressions), and run for the whole
// test. Every tenth message of the load is spam: GTUBE in its body, from
// the null sender. mxd passes rspamd's refusal on at the end of the
// data; the sender's Postfix must log it (status=bounced, "said: 554
// 5.7.1 Gtube pattern") for every spam message and bounce it to nobody,
// and no copy may reach the list. Spam is counted apart: "lost" and
// "deferrals" are of legitimate mail only, and no legitimate message may
// get a 5xx.
//
// The phase "restart rspamd" restarts every MX host's rspamd at once
// under the load, as the service's restart does: SIGTERM (rspamd ends
// its scans and exits), then started again with its configuration and
// database. With its database kept, rspamd is back in 2–4 s, within
// mxd's milter_ride_through (10 s, the default, kept here):
// meanwhile a new message waits for the milter, and a message whose
// conversation rspamd closed is sent again on a new connection. The
// phase is held to 0 lost, 0 deferrals, 0 messages given the milter's
// default action, and every spam refused. In two runs: back in
// 2.16–3.92 s (the three at once on two shared CPUs), 42 and 52
// messages and 4 and 6 spam submitted in the phase, 0 lost, 0
// deferrals, 3 conversations sent again in each, 0 default actions, max
// extra delay 2.56 and 4.31 s; 105 and 107 spam in the whole run, all
// refused. With milter_ride_through = "0s" the same phase fails: 19
// deferrals, 48 messages given the default action (tempfail).
//
// # When it fails
//
// Every failure is noted with the phase it happened in (phasedT), and a
// failed run ends with the list of them, after the tails of the
// servers' logs that the lab prints when it is cleaned up: the last
// lines say which phase and which check failed. The whole logs of every
// host (mxd, listd, the redis-servers and sentinels, BIND, Knot,
// Postfix's maillog, go-redis's own lines) are saved in
// test/results/TEST-TIME-ID/, which git ignores.
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
// the start. No other alert fired in the phases before the
// back-to-back failovers, kill -9 of an mxd (down 3 s) and the first
// failovers included; in that phase MxqHostHeartbeatStale fires for
// every MX host, as it should: no heartbeat is written for 15 s, 150 s
// at the shipped time scale, against a `for:` of 1 minute. The run then
// asks this Prometheus every query of the example dashboard, and every
// panel must show data (checkDashboard).
//
// # The queue's Redis under load
//
// Redis runs as docs/redis.md deploys it for high availability: a
// primary, two replicas and three sentinels (down-after-milliseconds
// 1000), min-replicas-to-write 1 and appendfsync always on every data
// server. Every mxd, listd and dnsctl is given the Sentinel URL, and mxd
// waits for one replica before it answers 250 (replicas = 1), listd
// before it counts an acknowledgement as confirmed. Four phases:
//
//   - redis switch-over: the primary moves to a replica through
//     redisha.Client.Switchover, what `mxq redis switchover` runs (pause writes,
//     wait for the replicas, SENTINEL FAILOVER, REPLICAOF, unpause);
//   - kill -9 redis primary: SIGKILL to the primary's redis-server; the
//     sentinels promote a replica;
//   - old primary back: the killed server starts again as the primary it
//     was, with its AOF; Sentinel makes it a replica of the primary,
//     about 11 s later (Sentinel lets a server it saw change role settle
//     for 8 s first). Meanwhile min-replicas-to-write keeps it from
//     taking a write, and the sentinels send no client to it;
//   - back-to-back failovers: SIGKILL to the primary and, as soon as a
//     sentinel names the replica it promoted (and that server says
//     role:master), SIGKILL to that one too, while the first failover
//     is still being completed. The sentinels must fail over again, to
//     the last server; it has no replica, and min-replicas-to-write holds
//     every write until one of the two killed servers, started again
//     once the last one is promoted, rejoins as its replica (again about
//     11 s). Mail waits in mxd's sessions (ride_through, 30 s) and in
//     listd's retries meanwhile. The phase must see two failovers, and
//     lose and duplicate nothing.
//
// The second failover is usually over 2.2 s after the second kill, but
// not always: the sentinel that led the first is still busy with it (its
// promoted replica is gone) and does not vote, and the two others, told
// of the first failover by the same message, find the new primary down
// at the same moment and both ask for votes for themselves. With the
// votes split neither is elected; the election is abandoned after 10 s
// and tried again 20 s after it began (twice failover-timeout). Such a
// run (2 of 9 here) is 20 s longer: the queue takes no confirmed write
// for about 35 s, more than mxd's ride_through, and mxd answers 451 to
// the sessions that waited longest (9 and 5 in those runs; the sender's Postfix
// took each to another MX host, which took it, so it logged no
// deferral). So the phase is held to no deferral and no 4xx only when
// the queue was back within ride_through less 5 s; either way it is held
// to 0 lost and 0 duplicated. The table of failovers shows a split vote
// as a failed election before the last one.
//
// Which server is primary is always asked of the sentinels, never
// assumed: with down-after-milliseconds at 1 s, a sentinel on a loaded
// machine may find a primary it has just promoted down too, and fail
// over again to the other replica on its own (seen once, 1.2 s after
// the first promotion). A watch (FailoverWatch) reads every sentinel's
// config epoch and primary ten times a second, and the table lists
// every failover of the run with its phase, those the test asked for
// and those it did not.
//
// Eight runs on one machine (two CPUs, shared with other engineers'
// tests; load average 8–24, two runs beside go test -race ./queue/,
// one with the test itself under -race as make test runs it):
//
//	phase                   lost  deferrals  duplicates  max extra delay  target
//	redis switch-over       0     0          0           1.02–1.78 s      0, 0, 0, ≤ 2 s
//	kill -9 redis primary   0     0          0           2.20–2.95 s      0, 0, ≤ in flight, ≤ failover + 2 s
//	old primary back        0     0          0           0–0.34 s
//	back-to-back failovers  0     0          0           15.4–16.7 s      0, 0, 0, < ride_through
//	  (split vote, 2 runs)  0     0          0           35.2–35.3 s      0, 0, 0 (mxd gave 451 9 and 5 times)
//
// The switch-over paused writes for 1.05–1.36 s: Sentinel sees its
// promotion of the replica on its next INFO, once a second during a
// failover, and mxd finds the new primary only through Sentinel. The
// failover took 2.3–2.9 s from the kill until the new primary had a
// replica again: 1 s until the sentinels take the primary as down, the
// vote, the promotion seen on the next INFO, and the other replica's
// resync. In the back-to-back failovers the second server was promoted
// 2.3–2.4 s after the first kill (and killed with 0 or 1 replica
// online), the last one 4.5–4.6 s after it (24.1–24.3 s with a split
// vote), and it had a replica 14.7–15.8 s after it (34.4–34.5 s): the
// rest is the 10–12 s of a restarted server's rejoining. The phase takes
// 19–20 s of the run (39–40 s with a split vote). In each Redis phase 5
// of mxd's sessions waited for the queue (the Postfix sends on 5
// connections at first); none gave up but in the split votes; once, in
// the kill -9 phase, listd took back an entry whose acknowledgement the
// failover lost and acknowledged it again without delivering it (the
// last table: what mxd and listd counted of riding through, per phase).
// mxd retries its enqueue at least once a second, listd its reads with
// a back-off that doubles up to 5 s. 0 messages were queued and
// unacknowledged at the kill in these runs. An acknowledgement that a
// failover loses brings its message back; listd remembers the ids it
// acknowledged (queue.Delivery.AckedBefore) and acknowledges it again
// rather than delivering it twice.
//
// # DANE
//
// The zone is signed (BIND dnssec-policy default; the Knot secondary
// serves the signed zone), every mxd serves STARTTLS with its own ECDSA
// key, and each key's TLSA 3 1 1 record is published with `dnsctl tlsa
// publish` before the sender starts. The sender's Postfix sends with
// smtp_tls_security_level = dane and smtp_dns_support_level = dnssec
// through unbound on the res host, which validates with the zone's
// DNSKEY as trust anchor and caches nothing (so the sender still sees an
// MX removal at once); its resolv.conf says trust-ad, without which glibc
// clears the AD bit and Postfix takes every answer as insecure. The phase
// "tls rollover mx2" runs `dnsctl tlsa rollover` for mx2: publish the new
// key's record, wait until every authoritative server has it and the TTL
// has passed, a hook that installs the files and sends SIGHUP, check
// that mx2 serves only the new key, retire the old record. The run fails
// if the sender defers in that phase, if it never verified a connection
// by DANE ("Verified TLS connection established"), or if it ever met a
// key without a record: "Server certificate not verified" (a deferral),
// or an "Untrusted TLS connection established" line alone, which is all
// Postfix logs when it then takes the message to the next MX host. In a
// run (go test ./test/network -v, 3 min in all, on 2 shared cores):
// 55 messages submitted during the 5.4 s rollover, 0 lost, 0 deferrals,
// p99 delay 110 ms; 1022 connections verified by DANE in the whole run,
// 0 not (an earlier run: 46 messages, 5.8 s, 0 deferrals).
//
// TestDANERollover shows the same check can fail: with mx1 alone in the
// MX RRset (with other MX hosts lacking TLSA, Postfix would deliver
// there), a certificate changed before its record is published makes
// Postfix defer every message (3 of 3 in a run, counted again when
// Postfix retries: 5, 3 and 3 deferrals in three runs) and log the untrusted
// connection, and `dnsctl tlsa retire` refuses; publishing the served
// key lets the deferred mail go. The rollover done by dnsctl before it,
// with unbound caching the TLSA RRset for its 3 s TTL and mail sent every
// 200 ms: 0 deferrals, 0 untrusted connections.
//
// The restart of a single Redis without Sentinel is its own scenario
// (TestRedisRestartRideThrough in package smtpd): here a primary gone
// for 2 s is a failover.
package network
