package tomlfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type route struct {
	Match   string   `toml:"match"`
	Timeout Duration `toml:"timeout"`
}

// settings is a command's configuration in small: defaults, and the
// table that binds the file's keys to them.
type settings struct {
	Name    string
	Timeout time.Duration
	Workers int
	Tags    []string
	Routes  []route
}

func defaults() *settings { return &settings{Name: "mxq", Timeout: time.Minute} }

func (s *settings) bind() []Setting {
	return []Setting{
		{"name", &s.Name},
		{"timeout", &s.Timeout},
		{"workers", &s.Workers},
		{"tags", &s.Tags},
		{"route", &s.Routes},
	}
}

func write(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDecode(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "name = \"x\"\n\nnmae = \"y\"\n", `:3: unknown key "nmae" (see example.toml`},
		{"unknown key in a table", "[[route]]\nmatch = \"a\"\nmaildri = \"b\"\n", `:3: unknown key "route.maildri"`},
		{"syntax", "name = \n", `.toml:1: `},
		{"bad duration", "name = \"x\"\ntimeout = \"soon\"\n", `:2: timeout: want a duration such as "30s"`},
		{"bare number for a duration", "timeout = 30\n", `:1: timeout: want a duration`},
		{"bad duration in a table", "[[route]]\nmatch = \"a\"\ntimeout = \"soon\"\n", `:3: route.timeout: want a duration`},
		{"wrong type", "workers = \"many\"\n", `:1: workers: incompatible types`},
		{"wrong type in a table", "[[route]]\nmatch = 1\n", `:2: route.match: incompatible types`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.src)
			_, err := Decode(path, defaults().bind(), "example.toml")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path) {
				t.Errorf("Decode = %v, want an error naming %s and containing %q", err, path, tt.want)
			}
		})
	}
}

// A key the file sets replaces the default; the others keep theirs.
func TestDecodeKeepsDefaults(t *testing.T) {
	path := write(t, "workers = 3\ntags = [\"a\", \"b\"]\n[[route]]\nmatch = \"x\"\ntimeout = \"2m\"\n")
	got := defaults()
	if _, err := Decode(path, got.bind(), "example.toml"); err != nil {
		t.Fatal(err)
	}
	want := &settings{Name: "mxq", Timeout: time.Minute, Workers: 3, Tags: []string{"a", "b"},
		Routes: []route{{Match: "x", Timeout: Duration(2 * time.Minute)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestCheckExample(t *testing.T) {
	const good = `# name = "other" shows another value
name = "mxq"
timeout = "1m"
workers = 8
# tags = ["a"]
[[route]]
match = "a"
# timeout = "5m"
`
	tests := []struct {
		name, src string
		want      []string
	}{
		{"good", good, nil},
		{"a key missing", strings.Replace(good, "workers = 8\n", "", 1), []string{`does not show "workers"`}},
		{"a table's key missing", strings.Replace(good, "match = \"a\"\n", "", 1), []string{`does not show "match"`}},
		{"not the default", strings.Replace(good, `timeout = "1m"`, `timeout = "2m"`, 1), []string{`sets timeout = 2m0s, but its default is 1m0s`}},
		{"an example where the default is empty", strings.Replace(good, "workers = 8", "workers = 0", 1), nil},
		{"an unknown commented key", good + "# wokers = 3\n", []string{`shows "wokers", which is not a setting`}},
		{"prose that is not a key", good + "# p=reject, say\n", nil},
		{"an unknown key", "wokers = 3\n" + good, []string{`unknown key "wokers"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.src)
			got := CheckExample(path, func() []Setting { return defaults().bind() })
			if len(got) != len(tt.want) {
				t.Fatalf("CheckExample = %q, want %d problems like %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d: %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
