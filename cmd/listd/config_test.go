package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mxq/cmd/internal/tomlfile"
)

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "listd.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfig(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-config", "../../docs/examples/listd.toml", "-check-config"}, &out, &out)
	if err != nil {
		t.Fatalf("docs/examples/listd.toml: %v", err)
	}
	if !strings.Contains(out.String(), "ok, 5 routes, 128 deliveries at once") ||
		!strings.Contains(out.String(), "meta@lists.example.org → exec /usr/bin/public-inbox-mda with PI_CONFIG, HOME (at most 8 at once)") ||
		!strings.Contains(out.String(), "~*/*@lists.example.org → lmtp unix:/run/lists.sr.ht/lmtp.sock (at most 8 at once)") ||
		!strings.Contains(out.String(), "announce@lists.example.org → exec /usr/bin/mlmmj-receive") ||
		!strings.Contains(out.String(), "(at most 2 at once)") ||
		!strings.Contains(out.String(), "*@archive.example.org → maildir") ||
		!strings.Contains(out.String(), "(no limit of its own)") {
		t.Errorf("-check-config printed:\n%s", out.String())
	}
	for _, p := range tomlfile.CheckExample("../../docs/examples/listd.toml", func() []tomlfile.Setting { return defaults().settings() }) {
		t.Error(p)
	}
}

func TestConfigErrors(t *testing.T) {
	const route = "\n[[route]]\nmatch = \"*@lists.example.org\"\nmaildir = \"/var/mail/x\"\n"
	tests := []struct {
		name, src, want string
	}{
		{"unknown top-level key", "redis = \"redis://127.0.0.1:6379/0\"\nconcurrence = 3\n" + route, `:2: unknown key "concurrence"`},
		{"unknown key in a route", "[[route]]\nmatch = \"a@b.example\"\nmaildir = \"/x\"\n\n[[route]]\nmatch = \"c@b.example\"\nlmpt = \"unix:/x\"\n", `:7: unknown key "route.lmpt"`},
		{"bad duration", "lease = \"forever\"\n" + route, `:1: lease: want a duration`},
		{"bad duration in a route", "[[route]]\nmatch = \"a@b.example\"\nmaildir = \"/x\"\ntimeout = \"later\"\n", `:4: route.timeout: want a duration`},
		{"two destinations", "[[route]]\nmatch = \"a@b.example\"\nmaildir = \"/x\"\nlmtp = \"unix:/y\"\n", "line 1: route 1: match \"a@b.example\": want exactly one of lmtp, smtp, exec, maildir (found 2)"},
		{"no destination", "[[route]]\nmatch = \"a@b.example\"\n", "found 0"},
		{"no routes", "concurrency = 2\n", "no [[route]]"},
		{"negative replicas", "replicas = -1\n" + route, `:1: replicas -1: want 0 (no waiting) or more`},
		{"negative replica_timeout", "replica_timeout = \"-1s\"\n" + route, `:1: replica_timeout -1s: want more than 0`},
		{"bad pattern", "[[route]]\nmatch = \"not-an-address\"\nmaildir = \"/x\"\n", "want local@domain"},
		{"relative exec", "[[route]]\nmatch = \"a@b.example\"\nexec = [\"mlmmj-receive\"]\n", "absolute path"},
		{"missing exec", "[[route]]\nmatch = \"a@b.example\"\nexec = [\"/nonexistent/prog\"]\n", "no such file"},
		{"relative maildir", "[[route]]\nmatch = \"a@b.example\"\nmaildir = \"mail\"\n", "absolute path"},
		{"lmtp without port", "[[route]]\nmatch = \"a@b.example\"\nlmtp = \"localhost\"\n", `want "unix:/path" or "host:port"`},
		{"retry_max below retry_min", "retry_min = \"1h\"\nretry_max = \"1m\"\n" + route, `:2: retry_max 1m0s: want at least retry_min (1h0m0s)`},
		{"bad log level", "log_level = \"loud\"\n" + route, `:1: log_level: slog: level string "loud": unknown name`},
		{"env not NAME=value", "[[route]]\nmatch = \"a@b.example\"\nexec = [\"/bin/cat\"]\nenv = [\"PI_CONFIG\"]\n", `line 4: route 1: env: "PI_CONFIG": want NAME=value`},
		{"env with a newline", "[[route]]\nmatch = \"a@b.example\"\nexec = [\"/bin/cat\"]\ntimeout = \"1m\"\nenv = [\"HOME=/a\\nB=c\"]\n", `line 5: route 1: env: HOME: the value has a NUL, CR or LF`},
		{"env sets the envelope", route + "\n[[route]]\nmatch = \"c@b.example\"\nenv = [\n  \"HOME=/a\",\n  \"ORIGINAL_RECIPIENT=x@b.example\",\n]\nexec = [\"/bin/cat\"]\n", `line 8: route 2: env: ORIGINAL_RECIPIENT: listd sets SENDER, RECIPIENT, ORIGINAL_RECIPIENT, QUEUE_ID from each message's envelope`},
		{"env twice", "[[route]]\nmatch = \"a@b.example\"\nexec = [\"/bin/cat\"]\nenv = [\"HOME=/a\", \"HOME=/b\"]\n", `env: HOME: set twice`},
		{"env on an lmtp route", "[[route]]\nmatch = \"a@b.example\"\nlmtp = \"127.0.0.1:24\"\nenv = [\"HOME=/a\"]\n", `line 4: route 1: match "a@b.example": env is for exec routes only`},
		{"max_parallel zero", "[[route]]\nmatch = \"a@b.example\"\nmaildir = \"/x\"\nmax_parallel = 0\n", `max_parallel 0: want at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.src)
			_, err := loadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig = %v, want an error containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestMaxParallelDefaults(t *testing.T) {
	src := `[[route]]
match = "a@lists.example.org"
lmtp = "unix:/run/lmtp.sock"

[[route]]
match = "b@lists.example.org"
maildir = "/var/mail/b"

[[route]]
match = "c@lists.example.org"
smtp = "127.0.0.1:25"
max_parallel = 3

[[route]]
match = "d@lists.example.org"
maildir = "/var/mail/d"
max_parallel = 16
`
	cfg, err := loadConfig(writeConfig(t, src))
	if err != nil {
		t.Fatal(err)
	}
	want := []int{8, 0, 3, 16}
	for i, r := range cfg.Routes {
		if got := r.maxParallel(); got != want[i] {
			t.Errorf("route %s: max_parallel %d, want %d", r.Match, got, want[i])
		}
	}
}
