// Package upgrade tests a rolling upgrade: mxd and listd built at the
// baseline commit (named in the file baseline, next to this one) and at
// the current tree run together against one redis-server under SMTP load,
// in every order an operator may take the hosts, and back. See
// upgrade_test.go for the phases and what each must show.
package upgrade
