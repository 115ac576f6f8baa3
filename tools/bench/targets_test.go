package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"io"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		want   targetSpec
		server string
		client []string
	}{
		{"smtp-sink", targetSpec{server: "smtp-sink"}, "smtp-sink", nil},
		{"mxd", targetSpec{server: "mxd"}, "mxd", nil},
		{"postfix-rsa", targetSpec{server: "postfix", cert: "rsa"}, "postfix-rsa", []string{"-starttls", "-tls-verify=false"}},
		{"mxd-ecdsa", targetSpec{server: "mxd", cert: "ecdsa"}, "mxd-ecdsa", []string{"-starttls", "-tls-verify=false"}},
		// Resumption is the client's doing: the same server as mxd-ecdsa.
		{"mxd-ecdsa-resume", targetSpec{server: "mxd", cert: "ecdsa", resume: true}, "mxd-ecdsa",
			[]string{"-starttls", "-tls-verify=false", "-tls-resume"}},
		{"mxd-replicas", targetSpec{server: "mxd", replicas: true}, "mxd-replicas", nil},
		{"mxd-ref", targetSpec{server: "mxd", ref: true}, "mxd-ref", nil},
		{"mxd-rspamd", targetSpec{server: "mxd", rspamd: true}, "mxd-rspamd", nil},
		{"postfix-rspamd", targetSpec{server: "postfix", rspamd: true}, "postfix-rspamd", nil},
		// Pacing is the client's doing: the same server as mxd.
		{"mxd-paced", targetSpec{server: "mxd", paced: true}, "mxd", nil},
		{"postfix-paced", targetSpec{server: "postfix", paced: true}, "postfix", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTarget(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.name = tc.name
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(targetSpec{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if k := got.serverKey(); k != tc.server {
				t.Errorf("server %q, want %q", k, tc.server)
			}
			if diff := cmp.Diff(tc.client, got.clientArgs()); diff != "" {
				t.Errorf("client flags (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"exim", "mxd-dsa", "mxd-rsa-resume-again", "smtp-sink-rsa", "postfix-replicas", "mxd-resume"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q): no error", bad)
		}
	}
}

// decodeTOML decodes a config as mxd's loader does; a key written twice is
// an error.
func decodeTOML(t *testing.T, text string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if _, err := toml.Decode(text, &m); err != nil {
		t.Fatalf("%v in:\n%s", err, text)
	}
	return m
}

func TestMxdConfigFile(t *testing.T) {
	base := mxdServer{listen: "127.0.0.1:2525", redis: "redis://127.0.0.1:6379/0", metrics: "127.0.0.1:9100", dns: "127.0.0.1:5353"}
	cert := &certFiles{cert: "/tmp/b/tls/ecdsa.pem", key: "/tmp/b/tls/ecdsa.key"}
	for _, tc := range []struct {
		name  string
		s     func(mxdServer) mxdServer
		extra []string
		want  map[string]any // keys that must have these values
		none  []string       // keys that must not be there
	}{
		{"headline: one client address, the cap lifted", func(s mxdServer) mxdServer { s.onePeer = true; return s }, nil,
			map[string]any{"max_connections_per_ip": int64(100000), "listen": []any{"127.0.0.1:2525"},
				"connection_rate_limit": int64(-1), "message_rate_limit": int64(-1), "recipient_rate_limit": int64(-1)},
			[]string{"tls_cert", "replicas"}},
		{"many client addresses: mxd's default cap", func(s mxdServer) mxdServer { return s }, nil,
			nil, []string{"max_connections_per_ip", "connection_rate_limit", "message_rate_limit", "recipient_rate_limit"}},
		{"tls", func(s mxdServer) mxdServer { s.cert = cert; return s }, nil,
			map[string]any{"tls_cert": cert.cert, "tls_key": cert.key}, []string{"max_connections_per_ip"}},
		{"replicas", func(s mxdServer) mxdServer { s.onePeer, s.replicas = true, 2; return s }, nil,
			map[string]any{"replicas": int64(2)}, nil},
		{"-mxd-set replaces a line instead of repeating its key",
			func(s mxdServer) mxdServer { s.onePeer = true; return s },
			[]string{"max_connections_per_ip = 50", `log_level = "warn"`, "tls_ticket_rotation=\"10m\""},
			map[string]any{"max_connections_per_ip": int64(50), "log_level": "warn", "tls_ticket_rotation": "10m"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := mxdConfigFile(tc.s(base), "lists.example.org", tc.extra)
			got := decodeTOML(t, text)
			for k, v := range tc.want {
				if diff := cmp.Diff(v, got[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			for _, k := range tc.none {
				if _, ok := got[k]; ok {
					t.Errorf("%s is set, want mxd's default:\n%s", k, text)
				}
			}
			for _, k := range []string{"hostname", "listen", "domains", "authserv_id", "redis", "metrics_listen", "dns_resolver"} {
				if _, ok := got[k]; !ok {
					t.Errorf("%s missing:\n%s", k, text)
				}
			}
		})
	}
}

func TestPostfixConfig(t *testing.T) {
	cert := &certFiles{cert: "/tmp/b/tls/rsa.pem", key: "/tmp/b/tls/rsa.key"}
	for _, tc := range []struct {
		name         string
		cert         *certFiles
		noPeerLookup bool
		milter       string
		want, none   []string
	}{
		{"plaintext", nil, false, "", nil, []string{"smtpd_tls_cert_file", "smtpd_tls_security_level", "smtpd_peername_lookup", "smtpd_milters"}},
		{"tls from many addresses", cert, true, "", []string{
			"smtpd_tls_security_level = may", "smtpd_tls_cert_file = " + cert.cert, "smtpd_tls_key_file = " + cert.key,
			"smtpd_peername_lookup = no"}, nil},
		{"rspamd", nil, false, "inet:127.0.0.1:11332", []string{"smtpd_milters = inet:127.0.0.1:11332"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mainCf := postfixConfig("lists.example.org", tc.cert, tc.noPeerLookup, tc.milter)
			keys := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(mainCf), "\n") {
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					t.Fatalf("main.cf line %q is not key = value", line)
				}
				k = strings.TrimSpace(k)
				if _, dup := keys[k]; dup {
					t.Errorf("main.cf sets %s twice", k)
				}
				keys[k] = strings.TrimSpace(v)
			}
			for _, w := range tc.want {
				k, v, _ := strings.Cut(w, " = ")
				if keys[k] != v {
					t.Errorf("main.cf %s = %q, want %q", k, keys[k], v)
				}
			}
			for _, k := range tc.none {
				if _, ok := keys[k]; ok {
					t.Errorf("main.cf sets %s", k)
				}
			}
		})
	}
}

func TestWriteCertificate(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"rsa", "ecdsa"} {
		f, err := writeCertificate(dir, kind, "mx-bench.invalid")
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		switch k := c.PrivateKey.(type) {
		case *rsa.PrivateKey:
			if kind != "rsa" || k.N.BitLen() != 2048 {
				t.Errorf("%s: RSA key of %d bits", kind, k.N.BitLen())
			}
		case *ecdsa.PrivateKey:
			if kind != "ecdsa" || k.Curve != elliptic.P256() {
				t.Errorf("%s: ECDSA key on %s", kind, k.Curve.Params().Name)
			}
		default:
			t.Errorf("%s: key %T", kind, k)
		}
	}
	if _, err := writeCertificate(dir, "dsa", "mx-bench.invalid"); err == nil {
		t.Error("dsa: no error")
	}
}

func TestStartRedisWithReplica(t *testing.T) {
	b := &bench{dir: t.TempDir(), stderr: io.Discard, maxmemory: 1 << 30, replicaFsync: "everysec"}
	t.Cleanup(b.exit)
	procs, url, err := b.startRedis(context.Background(), "redis", 1)
	if err != nil {
		t.Fatalf("%v (apt-get install redis-server)", err)
	}
	if len(procs) != 2 {
		t.Fatalf("%d processes, want the primary and one replica", len(procs))
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	info, err := redisInfo(addr, "replication")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "role:master") || !strings.Contains(info, "connected_slaves:1") {
		t.Errorf("primary's INFO replication:\n%s", info)
	}
}
