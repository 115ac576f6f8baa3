package tomlfile

import (
	"fmt"
	"strconv"
	"strings"
)

// Size binds a setting written as a number of bytes: "32MiB", "100KiB",
// "1GiB", "512B", or a plain integer (the form of older files). Units are
// powers of 1024; "MB" and the like are refused, being ambiguous.
func Size[T int | int64](v *T) any { return &size[T]{v} }

type size[T int | int64] struct{ v *T }

var units = []struct {
	name  string
	shift uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func (s *size[T]) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	num, shift := text, uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(text, u.name); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift || int64(T(n<<shift)) != n<<shift {
		return fmt.Errorf("%q: want a size such as \"32MiB\", \"100KiB\" or a number of bytes", text)
	}
	*s.v = T(n << shift)
	return nil
}

// String writes the size in the largest unit that divides it.
func (s *size[T]) String() string {
	n := int64(*s.v)
	for _, u := range units {
		if n != 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	return "0B"
}

func (s *size[T]) target() any { return s.v }

func (s *size[T]) sizeBinding() {}

// target is the variable a setting sets: To, or what a binding such as
// Size wraps.
func target(to any) any {
	if w, ok := to.(interface{ target() any }); ok {
		return w.target()
	}
	return to
}
