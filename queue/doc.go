// Package queue is the durable mail queue shared by every MX host and the
// consumers on the lists host. It is a set of Redis keys that all share one
// hash tag, so that every script and transaction touches a single slot and
// also works on Redis Cluster:
//
//	{NAME}:stream          stream of queued entries (field v: format version, id, rec: JSON)
//	{NAME}:body:ID         the message of queue id ID: a list, the MX host's header fields, then the client's data in chunks
//	{NAME}:spool:ID        the client's data of ID while it arrives, in chunks; expires unless appended to
//	{NAME}:dedup:HASH      queue id of a message already queued with that envelope and body
//	{NAME}:inflight:HOST   set of queue ids HOST accepted that are not yet acknowledged
//	{NAME}:hosts           set of every MX host that ever enqueued or sent a heartbeat
//	{NAME}:hb:HOST         heartbeat of HOST (JSON), with an expiry
//	{NAME}:drain:HOST      drain flag of HOST
//	{NAME}:rcpt:static     recipient registry edited by operators (mxq lists)
//	{NAME}:rcpt:routes     recipient registry published by consumers (listd)
//	{NAME}:dead            dead-letter stream
//	{NAME}:retry           sorted set: queue id → when its next attempt is due
//	{NAME}:wait:ID         the stream fields of ID while it waits for a retry
//	{NAME}:done:ID         per recipient of ID: delivered or failed, so a retry skips it
//	{NAME}:tries:ID        every attempt of ID and its error, for the dead letter
//	{NAME}:maint:lease     maintenance lease: one MX host in maintenance at a time (dnsctl)
//	{NAME}:maint:state     the maintenance in progress and its phase (JSON)
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
// same connection) until that many replicas have the write.
//
// Writes are never retried by the client: a write whose reply was lost may
// or may not have happened, and retrying it blindly could queue a message
// twice. The caller answers 4xx instead, the sender retries (through any MX),
// and the dedup key turns that retry into a no-op that returns the first
// queue id.
//
// The stream is never trimmed by length: MAXLEN and XTRIM would delete
// entries that were read but not yet acknowledged. Entries are deleted when
// they are acknowledged.
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
// current version and the previous one; fields added within a version are
// optional for readers. Version 2 stores the body as a list (the MX
// host's header, then chunks of the client's data); version 1 stored one
// string. Consumers must be upgraded before producers.
package queue
