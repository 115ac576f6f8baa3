package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mxq/cmd/internal/tomlfile"
)

// The annotated example shows every setting, and the defaults it shows
// are the code's (the rules are tomlfile.CheckExample's). make run's
// config is a working file: it loads, which includes the receiver's
// checks.
func TestExampleConfigs(t *testing.T) {
	for _, p := range tomlfile.CheckExample("../../docs/examples/mxd.toml", func() []tomlfile.Setting { return defaults().settings() }) {
		t.Error(p)
	}
	for _, path := range []string{"../../docs/examples/mxd.toml", "../../docs/examples/mxd-local.toml"} {
		if _, err := loadConfig(path); err != nil {
			t.Error(err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := "hostname = \"mx1.example.org\"\nlisten = [\"127.0.0.1:2525\"]\ndomains = [\"lists.example.org\"]\nauthserv_id = \"lists.example.org\"\n"
	tests := []struct{ name, src, want string }{
		{"unknown key", base + "\nmax_recipient = 5\n", `:6: unknown key "max_recipient"`},
		{"bad duration", base + "command_timeout = \"soon\"\n", `:5: command_timeout: want a duration`},
		{"syntax", base + "listen = [\n", `mxd.toml:`},
		{"missing hostname", strings.Replace(base, "hostname", "# hostname", 1), "hostname is required"},
		{"bad log level", base + "log_level = \"loud\"\n", `:5: log_level: slog: level string "loud": unknown name`},
		{"bad dns_temperror", base + "dns_temperror = \"retry\"\n", `:5: dns_temperror: "retry": want "record"`},
		{"bad proxy_from", base + "proxy_from = [\"10.0.0\"]\n", `proxy_from "10.0.0": want an address or CIDR prefix`},
		{"bad size", base + "memory_budget = \"256MB\"\n", `:5: memory_budget: "256MB": want a size such as "32MiB"`},
		{"zero size", base + "max_message_bytes = 0\n", `:5: max_message_bytes 0B: want more than 0`},
		{"prefix length", base + "ipv6_prefix_len = 200\n", `:5: ipv6_prefix_len 200: want 1 to 128`},
		{"zero rate limit", base + "message_rate_limit = 0\n", `:5: message_rate_limit 0: want more than 0, or -1 for off`},
		{"queue timeout", base + "replica_timeout = \"0s\"\n", `:5: replica_timeout 0s: want more than 0`},
		{"missing listen", strings.Replace(base, "listen", "# listen", 1), `listen is required: e.g. listen = ["0.0.0.0:25", "[::]:25"]`},
		{"missing domains", strings.Replace(base, "domains", "# domains", 1), "domains is required"},
		{"half a pair", base + "tls_cert = \"/etc/c.pem\"\n", "tls_key is required with tls_cert"},
		{"missing authserv_id", strings.Replace(base, "authserv_id", "# authserv_id", 1), "authserv_id is required: the same value on every MX"},
		{"bad authserv_id", strings.Replace(base, `"lists.example.org"`+"\n", `"lists example"`+"\n", 1), `:4: authserv_id "lists example": want a token`},
		{"zero dkim cap", base + "max_dkim_signatures = 0\n", `:5: max_dkim_signatures 0: want more than 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mxd.toml")
			os.WriteFile(path, []byte(tt.src), 0o644)
			_, err := loadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("loadConfig = %v, want an error naming %s and containing %q", err, path, tt.want)
			}
		})
	}
}

// A key the file leaves out keeps its package's default; one it sets
// reaches the package's configuration.
func TestConfigReachesPackages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mxd.toml")
	os.WriteFile(path, []byte("hostname = \"mx1.example.org\"\nlisten = [\"127.0.0.1:2525\"]\ndomains = [\"lists.example.org\"]\n"+
		"authserv_id = \"lists.example.org\"\nmax_recipients = 7\ndns_temperror = \"tempfail\"\nqueue = \"q2\"\nauth_timeout = \"3s\"\nproxy_from = [\"10.0.0.5\"]\n"+
		"max_message_bytes = \"10MiB\"\nmemory_budget = 1048576\n"), 0o644)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	d := defaults()
	if cfg.SMTP.MaxRecipients != 7 || !cfg.SMTP.TempFailDNS || cfg.Queue.Name != "q2" || cfg.Auth.Timeout.Seconds() != 3 ||
		cfg.Auth.AuthservID != "lists.example.org" || cfg.SMTP.AuthservID != "lists.example.org" || len(cfg.SMTP.ProxyFrom) != 1 || cfg.SMTP.ProxyFrom[0].Bits() != 32 ||
		cfg.SMTP.MaxMessageBytes != 10<<20 || cfg.SMTP.MemoryBudget != 1<<20 {
		t.Errorf("set keys did not arrive: %+v", cfg)
	}
	if cfg.SMTP.MaxReceived != d.SMTP.MaxReceived || cfg.Queue.DedupWindow != d.Queue.DedupWindow || cfg.DNSTimeout != d.DNSTimeout {
		t.Errorf("keys left out lost their defaults: %+v", cfg)
	}
}
