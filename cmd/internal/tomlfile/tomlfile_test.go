package tomlfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mxq/setting"
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
	Limit   int64
	Block   int
	Floor   int64
}

func defaults() *settings {
	return &settings{Name: "mxq", Timeout: time.Minute, Limit: 32 << 20, Block: 64 << 10}
}

func (s *settings) bind() []Setting {
	return []Setting{
		{"name", &s.Name},
		{"timeout", &s.Timeout},
		{"workers", &s.Workers},
		{"tags", &s.Tags},
		{"route", &s.Routes},
		{"limit", Size(&s.Limit)},
		{"block", Size(&s.Block)},
		{"floor", Size(&s.Floor)},
	}
}

// check is what a package's check of these settings would be.
func (s *settings) check() error {
	c := setting.For(s)
	c.Required(&s.Name)
	setting.Positive(c, &s.Timeout)
	setting.Between(c, &s.Workers, 0, 16)
	setting.AtLeast(c, &s.Limit, &s.Floor)
	return c.Err()
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
		{"bad size", "name = \"x\"\nlimit = \"32MB\"\n", `:2: limit: "32MB": want a size such as "32MiB"`},
		{"negative size", "limit = -1\n", `:1: limit: "-1": want a size`},
		{"size too big for its variable", "block = \"8589934592GiB\"\n", `:1: block: "8589934592GiB": want a size`},
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

func TestSize(t *testing.T) {
	tests := []struct {
		src  string
		want int64
		text string
	}{
		{`"32MiB"`, 32 << 20, "32MiB"},
		{`"100 KiB"`, 100 << 10, "100KiB"},
		{`"1GiB"`, 1 << 30, "1GiB"},
		{`"1000B"`, 1000, "1000B"},
		{`"33554432"`, 32 << 20, "32MiB"},
		{`33554432`, 32 << 20, "32MiB"}, // a plain integer, as older files have it
		{`102400`, 100 << 10, "100KiB"},
		{`0`, 0, "0B"},
	}
	for _, tt := range tests {
		path := write(t, "limit = "+tt.src+"\n")
		got := defaults()
		if _, err := Decode(path, got.bind(), "example.toml"); err != nil {
			t.Errorf("limit = %s: %v", tt.src, err)
			continue
		}
		if got.Limit != tt.want {
			t.Errorf("limit = %s read as %d, want %d", tt.src, got.Limit, tt.want)
		}
		if s := text(Size(&got.Limit)); s != tt.text {
			t.Errorf("limit = %s written as %s, want %s", tt.src, s, tt.text)
		}
	}
}

// Explain names the key and line of each setting a check refuses, the
// default of one the file left out, and the example for a required one.
func TestExplain(t *testing.T) {
	path := write(t, "name = \"\"\n\nworkers = 20\nlimit = \"1KiB\"\nfloor = \"2KiB\"\n")
	s := defaults()
	s.Timeout = time.Hour
	f, err := Decode(path, s.bind(), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	s.Timeout = -time.Second // as if left out with a bad default
	err = f.Explain(errors.Join(s.check(), errors.New("something else")))
	want := []string{
		path + ":1: name is required (see example.toml)",
		path + ": timeout -1s (the default): want more than 0",
		path + ":3: workers 20: want 0 to 16",
		path + ":4: limit 1KiB: want at least floor (2KiB)",
		path + ": something else",
	}
	if got := strings.Split(err.Error(), "\n"); !cmp.Equal(got, want) {
		t.Errorf("Explain (-want +got):\n%s", cmp.Diff(want, got))
	}
	if f.Explain(nil) != nil {
		t.Errorf("Explain(nil) = %v", f.Explain(nil))
	}
}

// A key the file sets replaces the default; the others keep theirs.
func TestDecodeKeepsDefaults(t *testing.T) {
	path := write(t, "workers = 3\ntags = [\"a\", \"b\"]\n[[route]]\nmatch = \"x\"\ntimeout = \"2m\"\n")
	got := defaults()
	if _, err := Decode(path, got.bind(), "example.toml"); err != nil {
		t.Fatal(err)
	}
	want := &settings{Name: "mxq", Timeout: time.Minute, Limit: 32 << 20, Block: 64 << 10, Workers: 3, Tags: []string{"a", "b"},
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
limit = "32MiB"
block = "64KiB"
floor = "0B"
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
		{"a size as a number", strings.Replace(good, `limit = "32MiB"`, "limit = 33554432", 1),
			[]string{`sets limit to a number: show it with its unit, limit = "32MiB"`}},
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
