// Package liststest runs the real and fake servers that tests of list
// delivery talk to: Dovecot's LMTP server, Postfix's smtp-sink (an SMTP
// server that dumps every message to a file), and an LMTP or SMTP server
// in the test process whose replies the test decides.
package liststest
