// Package tomlfile reads the TOML configuration files of mxq's commands
// (mxd, listd, dnsctl) the same way: a syntax error or an unknown key is an
// error that names the file and the line, and points at the annotated
// example of valid keys.
package tomlfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/BurntSushi/toml"
)

// Decode reads the file at path into v, which holds the defaults. example
// names the annotated example config (e.g. "docs/examples/mxd.toml"). It
// returns the file's text, for checks that want to name lines too.
func Decode(path string, v any, example string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	md, err := toml.Decode(string(src), v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s:%d: unknown key %q (see %s for the valid keys)", path, keyLine(src, und[0]), und[0].String(), example)
	}
	return src, nil
}

// keyLine finds the line where key is set, 0 if not found.
func keyLine(src []byte, key toml.Key) int {
	last := regexp.QuoteMeta(key[len(key)-1])
	re := regexp.MustCompile(`^\s*("?)` + last + `("?)\s*=|^\s*\[+\s*` + regexp.QuoteMeta(key.String()) + `\s*\]+`)
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		if re.MatchString(sc.Text()) {
			return n
		}
	}
	return 0
}

// Duration is a time.Duration written as "30s" or "2m", in TOML and as a
// flag value.
type Duration struct{ time.Duration }

// UnmarshalText parses "30s", "2m", "1h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"2m\": %w", err)
	}
	d.Duration = v
	return nil
}

// Set makes Duration a flag.Value.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }
