// Package tomlfile reads the TOML configuration files of mxq's commands
// (mxd, listd, dnsctl) the same way: a syntax error, a bad value or an
// unknown key is an error that names the file and the line, and points at
// the annotated example of valid keys.
//
// A command does not restate defaults in a TOML struct. It starts from the
// settings of the packages it wires (smtpd.Defaults(), queue.DefaultOptions()
// and the like, where each default is stated once) and binds each key of
// its file to the field that key sets, in one table of Settings. A key the
// file leaves out keeps the package's default. The command then checks
// what it has, with the packages' own checks (package setting), and File.Explain
// names the key and line of each setting they refuse. CheckExample holds
// the annotated example config to the same table.
package tomlfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"mxq/setting"
)

// A Setting binds one key of a file to the variable it sets. To points to
// a string, bool, integer, time.Duration (written "30s", "2m"), a slice of
// those, a slice of structs whose fields carry toml tags (an array of
// tables such as [[route]]), a type that reads itself
// (encoding.TextUnmarshaler), or is a binding such as Size. The variable
// holds the default when Decode starts.
type Setting struct {
	Key string
	To  any
}

// File is a configuration file that Decode read.
type File struct {
	Path     string
	Src      []byte // the file's text, for checks that name lines too
	settings []Setting
	example  string
}

// Decode reads the file at path into settings. example names the annotated
// example config (e.g. "docs/examples/mxd.toml") that errors point to.
func Decode(path string, settings []Setting, example string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, Src: src, settings: settings, example: example}
	if _, err := decode(f); err != nil {
		return nil, err
	}
	return f, nil
}

func decode(f *File) (toml.MetaData, error) {
	path, src := f.Path, f.Src
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(src), &top)
	if err != nil {
		return md, fileError(path, err)
	}
	to := make(map[string]any, len(f.settings))
	for _, s := range f.settings {
		to[s.Key] = s.To
	}
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		v, ok := to[k[0]]
		if !ok {
			return md, unknown(path, src, k, f.example)
		}
		if d, ok := v.(*time.Duration); ok {
			v = (*Duration)(d)
		}
		if err := md.PrimitiveDecode(top[k[0]], v); err != nil {
			return md, valueError(path, src, k, err)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return md, unknown(path, src, und[0], f.example)
	}
	return md, nil
}

// Explain names, for each setting that err refuses (a *setting.Error, or
// several joined), the key that set it and the line where it did:
// "mxd.toml:14: ipv6_prefix_len 200: want 1 to 128". A setting the file
// left out is named with its default; a required one, with the example
// to look at. Other errors are named with the file.
func (f *File) Explain(err error) error {
	if err == nil {
		return nil
	}
	refused, others := setting.All(err)
	var out []error
	for _, e := range refused {
		out = append(out, f.explain(e))
	}
	for _, e := range others {
		out = append(out, fmt.Errorf("%s: %w", f.Path, e))
	}
	return errors.Join(out...)
}

func (f *File) explain(e *setting.Error) error {
	s, ok := f.bound(e.Field)
	if !ok {
		return fmt.Errorf("%s: %w", f.Path, e)
	}
	where := f.At(s.Key)
	if strings.HasPrefix(e.Problem, setting.Missing) {
		return fmt.Errorf("%s: %s %s (see %s)", where, s.Key, e.Problem, f.example)
	}
	msg := fmt.Sprintf("%s: %s %s", where, s.Key, text(s.To))
	if where == f.Path {
		msg += " (the default)"
	}
	msg += ": " + e.Problem
	if e.Other != nil {
		if o, ok := f.bound(e.Other); ok {
			msg += fmt.Sprintf(" %s (%s)", o.Key, text(o.To))
		} else {
			msg += fmt.Sprintf(" %s (%v)", e.OtherName, setting.Value(e.Other))
		}
	}
	return errors.New(msg)
}

// At names where key is set: "path:line", or the path when the file
// leaves key out.
func (f *File) At(key string) string {
	if n := keyLine(f.Src, toml.Key{key}); n > 0 {
		return fmt.Sprintf("%s:%d", f.Path, n)
	}
	return f.Path
}

// bound returns the setting bound to the variable that field points to.
func (f *File) bound(field any) (Setting, bool) {
	p := reflect.ValueOf(field)
	for _, s := range f.settings {
		t := reflect.ValueOf(target(s.To))
		if t.Pointer() == p.Pointer() && t.Elem().Kind() == p.Elem().Kind() {
			return s, true
		}
	}
	return Setting{}, false
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
