package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A targetSpec is what a name in -targets asks for: which server, set up
// how, and how the load tool talks to it.
//
//	smtp-sink, postfix, mxd     plaintext, as in the headline
//	postfix-rsa, mxd-ecdsa, …   STARTTLS required by the client, the server
//	                            with an RSA 2048 or an ECDSA P-256 certificate
//	mxd-ecdsa-resume, …         the same server, the client offering the
//	                            TLS session of an earlier connection
//	mxd-replicas                mxd whose Redis has -replicas replicas on
//	                            this machine, and which waits for them
//	mxd-ref                     mxd built from the commit -mxd-ref names
//	postfix-rspamd, mxd-rspamd  plaintext, every message passing the
//	                            bench's one rspamd as a milter first
//	mxd-paced, postfix-paced    the server of mxd or postfix, the load
//	                            started at the rate its -rspamd target
//	                            reached in the same round (smtpload
//	                            -rate): its CPU per message without the
//	                            milter, doing the same work per second
type targetSpec struct {
	name     string
	server   string // smtp-sink, postfix or mxd
	cert     string // "", "rsa" or "ecdsa"
	resume   bool
	replicas bool
	ref      bool
	rspamd   bool
	paced    bool
}

// serverKey names the server process(es) a target runs against: targets
// that differ only in what the client does share one.
func (s targetSpec) serverKey() string {
	k := s.server
	if s.cert != "" {
		k += "-" + s.cert
	}
	if s.replicas {
		k += "-replicas"
	}
	if s.ref {
		k += "-ref"
	}
	if s.rspamd {
		k += "-rspamd"
	}
	return k
}

// clientArgs are the load tool's flags for the target's TLS.
func (s targetSpec) clientArgs() []string {
	if s.cert == "" {
		return nil
	}
	// The bench's certificate is self-signed.
	args := []string{"-starttls", "-tls-verify=false"}
	if s.resume {
		args = append(args, "-tls-resume")
	}
	return args
}

func parseTarget(name string) (targetSpec, error) {
	s := targetSpec{name: name}
	if name == "smtp-sink" {
		s.server = name
		return s, nil
	}
	parts := strings.Split(name, "-")
	s.server = parts[0]
	if s.server != "postfix" && s.server != "mxd" {
		return s, fmt.Errorf("unknown target %q (smtp-sink, postfix or mxd, optionally -rsa or -ecdsa and then -resume; or mxd-replicas, mxd-ref, postfix-rspamd, mxd-rspamd, postfix-paced, mxd-paced)", name)
	}
	rest := parts[1:]
	if len(rest) == 1 && rest[0] == "rspamd" {
		s.rspamd = true
		return s, nil
	}
	if len(rest) == 1 && rest[0] == "paced" {
		s.paced = true
		return s, nil
	}
	if s.server == "mxd" && len(rest) == 1 && rest[0] == "replicas" {
		s.replicas = true
		return s, nil
	}
	if s.server == "mxd" && len(rest) == 1 && rest[0] == "ref" {
		s.ref = true
		return s, nil
	}
	if len(rest) > 0 {
		if rest[0] != "rsa" && rest[0] != "ecdsa" {
			return s, fmt.Errorf("target %q: %q is not a certificate kind (rsa or ecdsa)", name, rest[0])
		}
		s.cert, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 && rest[0] == "resume" {
		s.resume, rest = true, rest[1:]
	}
	if len(rest) > 0 {
		return s, fmt.Errorf("target %q: unexpected %q", name, strings.Join(rest, "-"))
	}
	return s, nil
}

// startTargets starts the servers of the named targets, each server once:
// mxd-ecdsa and mxd-ecdsa-resume are the same mxd, loaded by different
// clients.
func (b *bench) startTargets(ctx context.Context, names []string) ([]*target, error) {
	var started []*target
	servers := map[string]*target{}
	for _, name := range names {
		spec, err := parseTarget(name)
		if err != nil {
			return nil, err
		}
		key := spec.serverKey()
		srv, ok := servers[key]
		if !ok {
			if srv, err = b.startServer(ctx, spec); err != nil {
				return nil, fmt.Errorf("start %s: %w", key, err)
			}
			srv.server = key
			servers[key] = srv
			b.logf("%s listening on %s (pids %s)", key, srv.addr, strings.Join(srv.pids, ","))
		}
		t := *srv
		t.name, t.client = name, spec.clientArgs()
		if spec.paced {
			t.pacedBy = spec.server + "-rspamd"
			if !slices.Contains(names[:slices.Index(names, name)], t.pacedBy) {
				return nil, fmt.Errorf("target %s is loaded at the rate %s reached in the same round: put %s before it in -targets", name, t.pacedBy, t.pacedBy)
			}
		}
		started = append(started, &t)
	}
	return started, nil
}

// startServer starts the server a target needs.
func (b *bench) startServer(ctx context.Context, spec targetSpec) (*target, error) {
	var cert *certFiles
	if spec.cert != "" {
		f, err := b.certificate(spec.cert)
		if err != nil {
			return nil, err
		}
		cert = &f
	}
	milter := ""
	if spec.rspamd {
		r, err := b.startRspamd(ctx)
		if err != nil {
			return nil, err
		}
		milter = "inet:" + r.Addr
	}
	switch spec.server {
	case "smtp-sink":
		return b.startSink(ctx)
	case "postfix":
		t, err := b.startPostfix(ctx, spec.serverKey(), cert, milter)
		return b.withRspamd(t, err, spec)
	default:
		replicas := 0
		if spec.replicas {
			replicas = b.replicas
		}
		if err := b.buildMxd(ctx); err != nil {
			return nil, err
		}
		bin := b.mxd
		if spec.ref {
			var err error
			if bin, err = b.buildRef(ctx); err != nil {
				return nil, err
			}
		}
		t, err := b.startMxd(ctx, spec.serverKey(), bin, cert, replicas, milter)
		return b.withRspamd(t, err, spec)
	}
}

// withRspamd adds the bench's rspamd to what the load measures of a
// target that uses it: its CPU is reported after the server's own.
func (b *bench) withRspamd(t *target, err error, spec targetSpec) (*target, error) {
	if err != nil || !spec.rspamd {
		return t, err
	}
	t.pids = append(t.pids, strconv.Itoa(b.rspamd.Pid()))
	return t, nil
}
