// Package tomlfile reads the TOML configuration files of mxq's commands
// (mxd, listd, dnsctl) the same way: a syntax error, a bad value or an
// unknown key is an error that names the file and the line, and points at
// the annotated example of valid keys.
//
// A command does not restate defaults in a TOML struct. It starts from the
// settings of the packages it wires (smtpd.Defaults(), queue.DefaultOptions()
// and the like, where each default is stated once) and binds each key of
// its file to the field that key sets, in one table of Settings. A key the
// file leaves out keeps the package's default. CheckExample holds the
// annotated example config to the same table.
package tomlfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// A Setting binds one key of a file to the variable it sets. To points to
// a string, bool, integer, time.Duration (written "30s", "2m"), a slice of
// those, a slice of structs whose fields carry toml tags (an array of
// tables such as [[route]]), or a type that reads itself
// (encoding.TextUnmarshaler). The variable holds the default when Decode
// starts.
type Setting struct {
	Key string
	To  any
}

// Decode reads the file at path into settings. example names the annotated
// example config (e.g. "docs/examples/mxd.toml") that errors point to. It
// returns the file's text, for checks that want to name lines too.
func Decode(path string, settings []Setting, example string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := decode(path, src, settings, example); err != nil {
		return nil, err
	}
	return src, nil
}

func decode(path string, src []byte, settings []Setting, example string) (toml.MetaData, error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(src), &top)
	if err != nil {
		return md, fileError(path, err)
	}
	to := make(map[string]any, len(settings))
	for _, s := range settings {
		to[s.Key] = s.To
	}
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		v, ok := to[k[0]]
		if !ok {
			return md, unknown(path, src, k, example)
		}
		if d, ok := v.(*time.Duration); ok {
			v = (*Duration)(d)
		}
		if err := md.PrimitiveDecode(top[k[0]], v); err != nil {
			return md, valueError(path, src, k, err)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return md, unknown(path, src, und[0], example)
	}
	return md, nil
}

// fileError names path and, for a parse error, the line.
func fileError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, msg)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// valueError names path, the line and the key of a value of the wrong
// type or form.
func valueError(path string, src []byte, key toml.Key, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fileError(path, err)
	}
	// The library's own words for a type mismatch start with where it
	// was: "toml: line 3 (last key "x"): ".
	msg := err.Error()
	if m := whereMismatch.FindStringSubmatch(msg); m != nil {
		key, msg = toml.Key(strings.Split(m[1], ".")), msg[len(m[0]):]
	}
	return fmt.Errorf("%s:%d: %s: %s", path, keyLine(src, key), key, msg)
}

var whereMismatch = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]*)"\): `)

func unknown(path string, src []byte, key toml.Key, example string) error {
	return fmt.Errorf("%s:%d: unknown key %q (see %s for the valid keys)", path, keyLine(src, key), key.String(), example)
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

// Duration is a time.Duration written as "30s" or "2m". Settings bound to
// a *time.Duration read it this way; a struct field in a table (a route's
// timeout) has this type.
type Duration time.Duration

// UnmarshalText parses "30s", "2m", "1h". A bare number is refused: it
// would be nanoseconds.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"2m\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
