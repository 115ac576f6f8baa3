// Package lists takes messages off the mail queue and hands them to
// mailing-list software: the consumer half of mxq.
//
// A Consumer fetches queued messages from a Source (a *queue.Consumer) and
// calls a Handler for each, several at a time. A Handler gets the queued
// record (queue id, envelope, authentication results) and the body, and
// returns nil when the message is delivered, an error wrapped with
// Permanent when it can never be delivered, or any other error when a
// later attempt may succeed. Temporary makes that explicit and also
// overrides a Permanent it wraps: the outermost mark decides, so an
// attempt that failed because it ran out of its Timeout is retried even
// when its handler called the failure permanent. Router is the
// Handler that listd uses: it picks a Destination per recipient (LMTP,
// SMTP, a program, a Maildir) by address pattern. Metrics counts every
// attempt for Prometheus, through the Consumer's Observe hook.
//
// # Guarantee: at least once
//
// A message leaves the queue only when its handler returned nil and the
// acknowledgement reached Redis, or when it was moved to the dead-letter
// stream. Anything else — a temporary error, a crash (even kill -9) of the
// consumer, a lost Redis connection, a stop in the middle of a delivery —
// leaves the message queued, and it is delivered again: after a back-off
// for a temporary error, after the lease runs out for a consumer that
// died. So a message may be delivered more than once, and a handler
// should be idempotent by queue id (Message.Record.ID): a Maildir
// delivery here reuses one file name per queue id and recipient, and
// public-inbox does not add a message it has; Mailman 3 and mlmmj do not
// drop a repeat, and send it to their subscribers again (docs/listd.md,
// "Recipes", has the tests).
//
// Within one message, recipients are remembered one by one: a handler
// calls Message.Delivered for each recipient that has the message (and
// Message.Reject for one that can never get it), and later attempts see
// only the recipients still pending. Router does this for you. Each call
// writes to Redis at once, except for the last pending recipient, whose
// record is the acknowledgement that follows (or a write before the
// retry, when the attempt ends another way). A retry therefore never
// repeats a recipient whose delivery was recorded; the one repeat left is
// the recipient whose delivery was under way, or just finished, when the
// consumer died or lost Redis.
//
// A temporary failure is retried with exponential back-off up to a cap
// (queue.ConsumerOptions); after the last attempt, or at once for a
// permanent failure, the message goes to the dead-letter stream with the
// reason and every attempt's error, where `mxq dead` shows it and can put
// it back.
//
// # Through a Redis failover
//
// Trouble with Redis never ends Run: fetching is tried again with
// back-off, logged when it starts, once a minute and when it ends. The
// writes that end an attempt (marks, Ack, Retry, Dead, Release) are sent
// again while the failure is one that passes (queue.Transient), for up to
// 30 seconds; each is safe to send twice. A delivery that
// queue.Delivery.AckedBefore reports was acknowledged by this consumer
// before a failover lost the acknowledgement: it is acknowledged again
// without calling the handler, with the outcome Redelivered.
//
// An entry whose record format is newer than this code reads is left,
// not dead-lettered (Outcome Left): it goes back to the queue at once,
// without an attempt counted, for a consumer that reads it to take over;
// its summary line says so at level warn, and `mxq stats` lists it.
//
// # What it never does
//
// It never drops a message silently: a recipient that matches no route is
// a permanent failure, visible in the dead-letter stream. It never runs a
// shell: an exec destination runs its program directly. It never blocks
// forever on Redis: fetches wait at most queue.ConsumerOptions.Block.
package lists
