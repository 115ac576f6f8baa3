package tomlfile

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
)

// CheckExample holds the annotated example config at path to the settings
// a command knows, for the command's tests. bind returns the command's
// settings bound to a fresh copy of its defaults at each call. The rules,
// which each example states in its header:
//
//   - every setting is shown, set or in a "# key = …" line, and so is
//     every key of a table setting ([[route]]);
//   - every key shown is a setting (Decode refuses unknown keys that are
//     set; this also catches those in "# key = …" lines);
//   - a key set to a value shows its default, unless the default is empty
//     (a required setting, or one that is off): then the value is an
//     example. "# key = …" lines show other values;
//   - a size is written with its unit ("32MiB"), not as a number.
//
// It returns one line per problem, none when the example is right.
func CheckExample(path string, bind func() []Setting) []string {
	src, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	defaults, example := bind(), bind()
	md, err := decode(&File{Path: path, Src: src, settings: example, example: "the command's settings"})
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	known := map[string]bool{}
	for i, s := range defaults {
		keys := append([]string{s.Key}, tableKeys(target(s.To))...)
		for _, k := range keys {
			known[k] = true
			if !shown(src, k) {
				problems = append(problems, fmt.Sprintf("%s does not show %q", path, k))
			}
		}
		def := reflect.ValueOf(target(s.To)).Elem()
		got := reflect.ValueOf(target(example[i].To)).Elem()
		if _, size := s.To.(interface{ sizeBinding() }); size && md.Type(s.Key) == "Integer" {
			problems = append(problems, fmt.Sprintf("%s sets %s to a number: show it with its unit, %s = \"%s\"",
				path, s.Key, s.Key, text(example[i].To)))
		}
		if md.IsDefined(s.Key) && !def.IsZero() && !reflect.DeepEqual(def.Interface(), got.Interface()) {
			problems = append(problems, fmt.Sprintf("%s sets %s = %v, but its default is %v: show the default, or the other value in a \"# %s = …\" line",
				path, s.Key, text(example[i].To), text(s.To), s.Key))
		}
	}
	for _, m := range commentedKey.FindAllSubmatch(src, -1) {
		if k := string(m[1]); !known[k] {
			problems = append(problems, fmt.Sprintf("%s shows %q, which is not a setting", path, k))
		}
	}
	return problems
}

// commentedKey is a "# key = value" line; prose such as "# p=reject" is
// not one.
var commentedKey = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*([a-z][a-z0-9_]*)[ \t]+=[ \t]+\S`)

// shown reports whether src sets key, shows it in a "# key = …" line or
// in an inline table ("{ key = …"), or has a [key] or [[key]] table.
func shown(src []byte, key string) bool {
	k := regexp.QuoteMeta(key)
	return regexp.MustCompile(`(?m)(^[ \t]*(#[ \t]*)?|[{,][ \t]*)` + k + `[ \t]*=|^[ \t]*(#[ \t]*)?\[\[?` + k + `\]\]?`).Match(src)
}

// tableKeys are the toml tags of the struct fields of a table setting: to
// points to a struct or a slice of structs.
func tableKeys(to any) []string {
	t := reflect.TypeOf(to).Elem()
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// text shows the value of the setting bound to to as the file would.
func text(to any) string {
	if d, ok := to.(fmt.Stringer); ok {
		return d.String()
	}
	v := reflect.ValueOf(to).Elem()
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprint(v.Interface())
}
