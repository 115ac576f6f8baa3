// Package liststest runs the real and fake servers that tests of list
// delivery talk to: Dovecot's LMTP server, and an LMTP or SMTP server in
// the test process whose replies the test decides.
package liststest
