// Package liststest runs the real and fake servers that tests of list
// delivery talk to: Dovecot's LMTP server, Postfix's smtp-sink (an SMTP
// server that dumps every message to a file), Mailman 3 with its LMTP
// runner, and an LMTP or SMTP server in the test process whose replies
// the test decides; and it makes public-inbox inboxes to deliver into.
package liststest
