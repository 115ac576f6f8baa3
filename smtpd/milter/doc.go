// Package milter is mxd's client of content filters that speak the milter
// protocol (version 6, as Postfix speaks it: rspamd, OpenDKIM, OpenDMARC,
// ClamAV's and SpamAssassin's milters), built on github.com/d--j/go-milter.
//
// A Filter is one milter: its address, its timeouts (connect, command,
// content, as Postfix's milter_*_timeout), its default action, and a
// bounded pool of connections to it. A Session is one message's turn on
// one connection: Begin sends the connection and HELO stages, then Mail,
// Rcpt, Data, Header, Body (called as the data arrives, in chunks of at
// most 64 KiB) and End follow the SMTP transaction; Abort ends it early.
// A connection serves one message at a time and goes back to the pool
// after it (the milter is told SMFIC_QUIT_NC before the next one).
//
// What it guarantees:
//   - every call returns within the filter's timeout for its stage, or
//     with an error; an error means the connection is closed and never
//     reused, and the caller applies the filter's default action;
//   - a milter that answers with a packet larger than maxPacket, or with
//     anything the protocol does not allow at that point, is an error, not
//     an allocation of the size it claims;
//   - what a call writes is kept until the library reads a reply (or 64
//     KiB are kept): a stage costs one write;
//   - Begin rides through a milter that is down for less than its
//     RideThrough: it dials again with back-off until then;
//   - a message whose connection the milter closes in the middle (a
//     restart) is sent again from its start on a new connection, once,
//     when what was sent of it is within replayMax (128 KiB): so much of
//     a message is kept, and no more.
//
// What it never does: apply a verdict (package smtpd decides the reply),
// or hold more of a message body than replayMax.
//
// Body replacement and changes of sender or recipients are offered at
// negotiation, because milters such as rspamd refuse a connection where
// they are not, but End reports them as Ignored changes: mxd stores the
// body and the envelope as they arrived.
package milter
