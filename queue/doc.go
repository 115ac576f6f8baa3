// Package queue is the durable mail queue shared by every MX host and the
// consumers on the lists host. It is a set of Redis keys that all share one
// hash tag, so that every script and transaction touches a single slot and
// also works on Redis Cluster: {NAME}:stream, {NAME}:body:ID and so on.
// The one list of the keys, with their types, is the "Keys" table of
// docs/redis.md; TestKeyLayout runs the whole life of a queue and fails
// when the keys it creates differ from that table. Two keys of that table
// share the hash tag but are not the queue's: {NAME}:maint:lease and
// {NAME}:maint:state belong to dnsctl's maintenance lease (package
// maintenance), which this package knows nothing of.
//
// # Guarantees
//
// Enqueue is one Lua script: the body key, the stream entry, the dedup key and
// the per-host accounting are written together or not at all. A big body
// is spooled first (see Spool): its chunks go to a temporary key that
// expires unless the producer keeps appending, and the script renames it
// into place, so that the commit itself stays small. It returns only
// after Redis has answered, and with `appendfsync always` Redis answers only
// after the AOF is fsynced, so a producer that has a nil error from Enqueue
// may answer 250. With Options.Replicas set, Enqueue also waits (WAIT, on the
// same connection) until that many replicas have the write, and so do a
// consumer's acknowledgements and per-recipient marks, a batch at a time.
//
// Writes are never retried by the client library (go-redis's MaxRetries
// is off): a write whose reply was lost may or may not have happened.
// Instead Enqueue and Spool.Append are idempotent, and a producer may
// call them again after a Transient error: the dedup key finds an enqueue
// that was committed after all and returns its id (Result.Duplicate is
// then false: it is the same message, not another copy), and an append
// finds its chunks already there by the spool's length (the transaction
// that pushes them trims the list back to the length it must have). mxd does so for
// a while (its ride_through) before it answers 451; the sender's own
// retry, through any MX host, meets the same dedup key.
//
// With Options.Replicas, a duplicate is not confirmed before the replicas
// have the original: the duplicate path rewrites the dedup key's expiry
// unchanged, a write after the original's in the replication stream, so
// its WAIT covers the original too.
//
// The stream is never trimmed by length: MAXLEN and XTRIM would delete
// entries that were read but not yet acknowledged. Entries are deleted when
// they are acknowledged.
//
// # Replicas and Sentinel
//
// Open takes a Sentinel URL (one with master_name) as well as one
// server's: the queue then asks the sentinels for the primary, and asks
// again after a failover (package redisha makes the connection,
// Queue.Redis). The new primary may lack the scripts (SCRIPT LOAD is not
// replicated): a script call it refuses with NOSCRIPT is sent again with
// the script. A failure during a failover is Transient, so a producer
// may try the same idempotent call again. Stats includes the state of
// replication; the switch-over of the primary is redisha's
// (Client.Switchover). docs/redis.md gives the deployment.
//
// # Errors
//
// Every Redis failure is returned as an *Error whose Kind says what a producer
// should answer: OutOfMemory (452 4.3.1) or Unavailable (451 4.3.0). A queue
// error is always temporary: nothing in this package asks a sender to bounce.
//
// # Record format
//
// The stream entry carries the format version in field "v" and the record
// (everything but the body) as JSON in field "rec". Readers accept the
// formats from OldestFormat to FormatVersion; fields added within a
// version are optional for readers. Version 2 stores the body as a list
// (the MX host's header, then chunks of the client's data); version 1
// stored one string.
//
// Writers follow readers: every consumer announces the formats it reads
// (before its first read, then every second while it fetches), and a
// producer with a FormatChooser writes the newest format that every live
// consumer reads, refreshed every few seconds and cached in between; a
// consumer that announces nothing (an earlier release) reads format 1
// only. An entry in a format newer than a consumer reads is left for
// another consumer (Delivery.TooNew, Delivery.Leave), never dead-lettered.
// FormatChooser says what is guaranteed while consumers come and go; the
// "Format versions and upgrades" section of docs/redis.md is the
// operator's side, CHANGELOG.md the history of the layout.
package queue
