// Package redisha is mxq's connection to Redis, and the operations on
// Redis itself rather than on any key: it opens the client of a Redis
// URL, one server or the primary that Redis Sentinels name (Open),
// reports replication as the primary and each sentinel see it
// (Client.Replication), and moves the primary to a replica without
// losing or refusing a write (Client.Switchover). The name says the
// job, high availability, and keeps clear of go-redis's package redis.
//
// # Guarantees
//
// The client never sends a command again by itself (go-redis's
// MaxRetries is off): a write whose reply was lost may or may not have
// happened, and only its caller knows whether sending it again is
// safe. Context deadlines bound socket reads; the socket deadlines
// (Config.SocketTimeout, unless the URL sets them) are only an outer
// bound. Over Sentinel, the client asks the sentinels for the primary,
// and asks again after a failover. Every connection carries
// Config.Name (CLIENT SETNAME), so that a program can tell mxq's
// connections from others in CLIENT LIST.
//
// Switchover holds writes on the primary (CLIENT PAUSE WRITE, bounded, so
// that Redis lets them go by itself even if the switch-over is killed),
// waits until every replica that Sentinel might promote has all of them,
// and only then asks Sentinel to fail over. The old primary follows the
// new one before writes resume, so a write held there is refused
// (READONLY) rather than carried out and later thrown away. It refuses,
// changing nothing, when the sentinels disagree, a failover is already
// running, or a replica Sentinel might promote is not in step.
//
// # Never
//
// It owns no key and knows no key layout: the keys are those of the
// packages that use the client (the one list is the "Keys" table of
// docs/redis.md). It never turns an error into an SMTP answer or a Kind
// (package queue does, for its own calls), and never starts a failover
// without first checking that the sentinels agree and the replicas are
// in step.
package redisha
