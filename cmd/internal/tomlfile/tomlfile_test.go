package tomlfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	type cfg struct {
		Name    string   `toml:"name"`
		Timeout Duration `toml:"timeout"`
		Routes  []struct {
			Match string `toml:"match"`
		} `toml:"route"`
	}
	tests := []struct{ name, src, want string }{
		{"ok", "name = \"x\"\ntimeout = \"2m\"\n[[route]]\nmatch = \"a\"\n", ""},
		{"unknown key", "name = \"x\"\n\nnmae = \"y\"\n", `:3: unknown key "nmae" (see example.toml`},
		{"unknown key in a table", "[[route]]\nmatch = \"a\"\nmaildri = \"b\"\n", `:3: unknown key "route.maildri"`},
		{"syntax", "name = \n", `.toml:1: `},
		{"bad duration", "timeout = \"soon\"\n", `want a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(path, []byte(tt.src), 0o644)
			var c cfg
			_, err := Decode(path, &c, "example.toml")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.want == "" && c.Timeout.Duration != 2*time.Minute:
				t.Errorf("timeout = %v", c.Timeout)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path)):
				t.Errorf("Decode = %v, want an error naming %s and containing %q", err, path, tt.want)
			}
		})
	}
}
