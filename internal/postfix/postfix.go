// Package postfix lays out a throwaway Postfix instance in a directory of
// its own, as the network tests' sending MTA and the benchmark's reference
// MTA use one: its configuration, queue and data directories, and its log
// file there, the stock daemons unchrooted so that no copies of /etc are
// needed. It does not start the instance: "postfix -c DIR/etc start" does,
// from whatever network namespace the caller wants it in.
package postfix

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Write lays out the instance in dir and returns its configuration
// directory (dir/etc). Its smtpd listens on listen ("host:port"); mainCf
// holds the main.cf lines that make it what the caller needs (its names,
// interfaces, relaying, transports), after the ones that place it in dir.
// The log is dir/maillog.
func Write(dir, listen, mainCf string) (etc string, err error) {
	pf, err := user.Lookup("postfix")
	if err != nil {
		return "", fmt.Errorf("postfix user: %w (apt-get install postfix)", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	etc = filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	// The data directory is mail_owner's. Only root can give it away, and
	// only root can start the instance: anyone else may still write one
	// and read it with postconf.
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
			return "", err
		}
	}
	main := strings.ReplaceAll(instanceCf, "{{dir}}", dir) + mainCf
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(main), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(listen+masterCf), 0o644); err != nil {
		return "", err
	}
	return etc, nil
}

// instanceCf places the instance in {{dir}}: queue, data and log there,
// the programs and their metadata from the system's Postfix. No local
// delivery and no aliases: every instance relays.
const instanceCf = `compatibility_level = 3.6
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
mydestination =
alias_maps =
alias_database =
biff = no
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
`

// masterCf follows the address smtpd listens on: the stock services with
// the stock process limits (100 smtpd), every one unchrooted.
const masterCf = ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
