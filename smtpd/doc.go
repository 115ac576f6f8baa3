// Package smtpd is the SMTP receiver of an MX host for mailing lists
// (RFC 5321, with PIPELINING, 8BITMIME, CHUNKING, SMTPUTF8 and SIZE).
//
// A Server keeps no spool. It checks each recipient at RCPT against the
// recipient registry, reads the message, prepends a Received header that
// carries the queue id, and hands the message to its Queue: the data goes
// to the message's Spool in batches while it arrives, and the Spool's
// Commit stores the whole. It answers "250 2.0.0 queued as ID" only after
// Commit returned nil, that is, after the message is durable in the shared
// queue. Any failure of the queue is answered with a 4xx, so the sender
// retries later or at another MX: the server never turns a fault of its own
// into a bounce.
//
// Every error becomes an SMTP reply in one function (reply, in reply.go).
// Internal error text never reaches the client; it is logged with the
// session id.
//
// A Server takes its Config as it is given (New refuses what Config.Check
// refuses, and fills nothing in); Defaults are those of a public MX: read
// and write timeouts, a deadline per command and a minimum data rate during
// DATA, a size limit advertised in SIZE, a recipient limit, connection caps
// in total and per client IP, rates per client (new connections, MAIL,
// RCPT) and error limits per session (limits.go), and a limit on Received
// headers against mail loops.
//
// Lifecycle: Shutdown stops accepting, lets transactions in flight finish,
// closes idle sessions with 421, and returns when every session is gone or
// the context ends. While the host's drain flag is set (SetDraining, fed by
// RunHeartbeat from the queue), new connections are answered
// "421 4.3.2" and closed, and sessions are closed with 421 as soon as they
// are between transactions.
//
// The package does not import Redis: it declares the interfaces it needs
// (Queue and Spool, Registry, Beater) and cmd/mxd wires package queue in
// (QueueOf).
package smtpd
