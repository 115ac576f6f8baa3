package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"mxq/dnsctl"
)

// tlsa runs "dnsctl tlsa SUB": status, publish or retire.
func tlsa(ctx context.Context, c *config, o *out, sub string, pos, certs []string) int {
	z, err := buildZone(ctx, c)
	if err != nil {
		return o.fail(err)
	}
	d := &dnsctl.DANE{Zone: z, SMTPPort: c.Maint.SMTPPort, TTL: uint32(c.TLSATTL / time.Second),
		Margin: c.Maint.Margin, Propagation: c.Maint.Propagation, Progress: o.progress}
	switch {
	case sub == "status" && len(pos) <= 1:
		return tlsaStatus(ctx, d, o, pos)
	case sub == "publish" && len(pos) == 1 && len(certs) > 0:
		cs, err := dnsctl.LoadCerts(certs...)
		if err != nil {
			return o.fail(&usageError{err.Error()})
		}
		rep, err := d.Publish(ctx, pos[0], cs)
		if err != nil {
			return o.fail(err)
		}
		if o.json {
			json.NewEncoder(o.stdout).Encode(rep)
			return exitOK
		}
		if len(rep.Added) > 0 {
			fmt.Fprintf(o.stdout, "published %s\n", rep.Added)
		} else {
			fmt.Fprintln(o.stdout, "every key already had a record; nothing published")
		}
		fmt.Fprintf(o.stdout, "%s may switch to the new certificate from %s on: every authoritative server shows %s, and resolvers have had %s to forget the RRset before it\n",
			rep.Host, rep.SwitchAt.UTC().Format(time.RFC3339), rep.TLSA, rep.Waited)
		return exitOK
	case sub == "rollover" && len(pos) >= 3 && pos[1] == "--" && len(certs) > 0:
		return tlsaRollover(ctx, c, d, o, pos[0], pos[2:], certs)
	case sub == "retire" && len(pos) <= 1:
		return tlsaRetire(ctx, d, o, pos)
	}
	return o.fail(&usageError{fmt.Sprintf("bad command line: tlsa %s %q: see dnsctl -h", sub, pos)})
}

// mxHosts is HOST when given, else every exchange of the zone's MX
// RRset on the primary.
func mxHosts(ctx context.Context, d *dnsctl.DANE, pos []string) ([]string, error) {
	if len(pos) > 0 {
		return pos, nil
	}
	v := d.Zone.Read(ctx, d.Zone.Primary)
	if v.Err != nil {
		return nil, fmt.Errorf("primary %s: %w", v.Server, v.Err)
	}
	var hosts []string
	for _, mx := range v.MX {
		hosts = append(hosts, mx.Exchange)
	}
	return hosts, nil
}

// tlsaStatus prints the status of HOST, or of every MX host of the zone.
func tlsaStatus(ctx context.Context, d *dnsctl.DANE, o *out, pos []string) int {
	hosts, err := mxHosts(ctx, d, pos)
	if err != nil {
		return o.fail(err)
	}
	var all []*dnsctl.TLSAStatus
	rc := exitOK
	for _, h := range hosts {
		st, err := d.Status(ctx, h)
		if err != nil {
			return o.fail(fmt.Errorf("%s: %w", h, err))
		}
		if !st.OK {
			rc = exitNotOK
		}
		all = append(all, st)
		if !o.json {
			st.WriteText(o.stdout)
		}
	}
	if o.json {
		if len(pos) == 1 {
			json.NewEncoder(o.stdout).Encode(all[0])
		} else {
			json.NewEncoder(o.stdout).Encode(all)
		}
	}
	return rc
}

// retired is the outcome of retire for one host of several (-json).
type retired struct {
	Host    string         `json:"host"`
	Removed dnsctl.TLSASet `json:"removed"`
	TLSA    dnsctl.TLSASet `json:"tlsa"`
	Error   string         `json:"error,omitempty"`
	Exit    int            `json:"exit"`
}

// tlsaRetire retires the unused records of HOST, or of every MX host of
// the zone in turn: a host refused does not stop the others (each is
// judged on its own records and keys), and the exit code is the first
// failure's.
func tlsaRetire(ctx context.Context, d *dnsctl.DANE, o *out, pos []string) int {
	if len(pos) == 1 {
		rep, err := d.Retire(ctx, pos[0])
		if err != nil {
			return o.fail(err)
		}
		if o.json {
			json.NewEncoder(o.stdout).Encode(rep)
			return exitOK
		}
		printRetired(o, rep)
		return exitOK
	}
	hosts, err := mxHosts(ctx, d, pos)
	if err != nil {
		return o.fail(err)
	}
	rc := exitOK
	var all []retired
	for _, h := range hosts {
		rep, err := d.Retire(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return o.fail(err)
			}
			if rc == exitOK {
				rc = code(err)
			}
			all = append(all, retired{Host: h, Error: err.Error(), Exit: code(err)})
			fmt.Fprintf(o.stderr, "dnsctl: %s: %v\n", h, err)
			continue
		}
		all = append(all, retired{Host: h, Removed: rep.Removed, TLSA: rep.TLSA})
		if !o.json {
			printRetired(o, rep)
		}
	}
	if o.json {
		json.NewEncoder(o.stdout).Encode(all)
	}
	return rc
}

func printRetired(o *out, rep *dnsctl.RetireReport) {
	if len(rep.Removed) == 0 {
		fmt.Fprintf(o.stdout, "%s: every record matches a served key; nothing removed\n", rep.Host)
	} else {
		fmt.Fprintf(o.stdout, "%s: removed %s; every authoritative server shows %s\n", rep.Host, rep.Removed, rep.TLSA)
	}
}

// tlsaRollover runs "dnsctl tlsa rollover -cert FILE... HOST -- COMMAND":
// COMMAND is the reload hook (install the certificates, SIGHUP mxd). The
// state is kept next to state_file, one file per host.
func tlsaRollover(ctx context.Context, c *config, d *dnsctl.DANE, o *out, host string, argv, certs []string) int {
	cs, err := dnsctl.LoadCerts(certs...)
	if err != nil {
		return o.fail(&usageError{err.Error()})
	}
	reload := func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, o.stderr, o.stderr
		return cmd.Run()
	}
	state := filepath.Join(filepath.Dir(c.Maint.StateFile), "tlsa-"+strings.TrimSuffix(strings.ToLower(host), ".")+".json")
	rep, err := d.Rollover(ctx, host, cs, reload, state)
	if err != nil {
		return o.fail(err)
	}
	if o.json {
		json.NewEncoder(o.stdout).Encode(rep)
		return exitOK
	}
	fmt.Fprintf(o.stdout, "%s: rolled over; every authoritative server shows %s\n", rep.Host, rep.Retire.TLSA)
	return exitOK
}
