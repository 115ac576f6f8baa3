package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The annotated example must parse and document every key.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	path := "../../docs/examples/mxd.toml"
	if _, err := loadConfig(path); err != nil {
		t.Fatalf("docs example: %v", err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ty := reflect.TypeFor[config]()
	for i := 0; i < ty.NumField(); i++ {
		key := ty.Field(i).Tag.Get("toml")
		if !strings.Contains(string(src), "\n"+key+" = ") {
			t.Errorf("docs/examples/mxd.toml does not document %q", key)
		}
	}
	if _, err := loadConfig("../../docs/examples/mxd-local.toml"); err != nil {
		t.Errorf("make run's config: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	base := "hostname = \"mx1.example.org\"\nlisten = [\"127.0.0.1:2525\"]\ndomains = [\"lists.example.org\"]\nauthserv_id = \"lists.example.org\"\n"
	tests := []struct{ name, src, want string }{
		{"unknown key", base + "\nmax_recipient = 5\n", `:6: unknown key "max_recipient"`},
		{"bad duration", base + "command_timeout = \"soon\"\n", `want a duration`},
		{"syntax", base + "listen = [\n", `mxd.toml:`},
		{"missing hostname", strings.Replace(base, "hostname", "# hostname", 1), "hostname is required"},
		{"bad log level", base + "log_level = \"loud\"\n", `log_level "loud"`},
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
