package smtpd

import mailaddr "mxq/address"

// hasRcpt reports whether the transaction already has a recipient that is
// the same address as a to the registry: equal but for the case of ASCII
// letters (mailaddr.SameAddress), so "post", "POST" and "Post" are one
// recipient. A subaddress is another recipient: "list+subscribe" is a
// command to lists.sr.ht and mlmmj, "list+owner" reaches mlmmj's owner,
// and mxd cannot tell such a tag from one that only decorates a post, so
// merging "list+tag" into "list" could turn a command into a post or
// lose it.
//
// The first copy wins, with its NOTIFY and ORCPT parameters. The
// recipients are at most MaxRecipients, so a scan is cheap.
func (ss *session) hasRcpt(a address) bool {
	addr := a.String()
	for _, r := range ss.rcpts {
		if mailaddr.SameAddress(r.Addr, addr) {
			return true
		}
	}
	return false
}
