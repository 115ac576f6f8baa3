package dnstest

import (
	"fmt"
	"strings"
)

// The configurations are what BIND 9.18 and Knot 3.2 need to run
// unprivileged on a loopback port with everything in a temporary
// directory: BIND writes its journals into `directory`, needs no pid file,
// session key or control channel, and notifies only the secondaries it is
// told of, at once; Knot 3.2 still names a secondary's primary `master:`.
// Secondaries are started before primaries, so that no NOTIFY is lost.

func bindOptions(dir string, port int, id string) string {
	return fmt.Sprintf(`options {
	directory %q;
	pid-file none;
	session-keyfile none;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify explicit;
	notify-delay 0;
	server-id %q;
};
controls { };
logging { category default { default_stderr; }; category xfer-in { default_stderr; }; };
`, dir, port, id)
}

// bindPrimary allows signed MX updates at the apex and TLSA updates below
// it, and notifies the secondaries at notify ports. With signed, BIND signs
// the zone itself (dnssec-policy default: one ECDSA P-256 key, NSEC), and
// signs every update.
func bindPrimary(dir string, port int, id string, k Key, notify []int, signed bool) string {
	policy := ""
	if signed {
		policy = "dnssec-policy default;\n\tkey-directory \"keys\";"
	}
	var also []string
	for _, p := range notify {
		also = append(also, fmt.Sprintf("127.0.0.1 port %d;", p))
	}
	return bindOptions(dir, port, id) + fmt.Sprintf(`include %q;
zone %q {
	type primary;
	file "zone.db";
	update-policy { grant %s name %s MX; grant %s subdomain %s TLSA; };
	allow-transfer { 127.0.0.1; };
	also-notify { %s };
	%s
};
`, k.File, Zone, k.Name, Zone, k.Name, Zone, strings.Join(also, " "), policy)
}

func bindSecondary(dir string, port int, id string, primary int) string {
	return bindOptions(dir, port, id) + fmt.Sprintf(`zone %q {
	type secondary;
	primaries { 127.0.0.1 port %d; };
	file "zone.bk";
	notify no;
};
`, Zone, primary)
}

func knotServer(dir string, port int, id string) string {
	return fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%d
    identity: %q
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: %q
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: %q
`, dir, port, id, dir, dir)
}

// knotPrimary allows signed MX and TLSA updates and increments the serial
// on each.
func knotPrimary(dir string, port int, id string, k Key) string {
	return knotServer(dir, port, id) + fmt.Sprintf(`key:
  - id: %s
    algorithm: %s
    secret: %s
acl:
  - id: update
    key: %s
    action: [update, transfer]
    update-type: [MX, TLSA]
zone:
  - domain: %s
    file: zone.db
    acl: update
    serial-policy: increment
`, k.Name, k.Algorithm, k.Secret, k.Name, Zone)
}

// knotSecondary follows the primary on port primary. Knot 3.2 names the
// primary with the key "master".
func knotSecondary(dir string, port int, id string, primary int) string {
	return knotServer(dir, port, id) + fmt.Sprintf(`remote:
  - id: primary
    address: 127.0.0.1@%d
acl:
  - id: notify
    address: 127.0.0.1
    action: notify
zone:
  - domain: %s
    master: primary
    acl: notify
`, primary, Zone)
}
