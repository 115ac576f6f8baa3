// Package setting is how mxq's packages refuse the settings they are
// given. A package states its defaults once (smtpd.Defaults,
// queue.DefaultOptions, …) and never fills a zero field from them: its
// caller starts from them. What the package is given, it checks with a
// Checker, and each problem it finds is an *Error that points to the
// field it is about. A command that read the field from its file names
// the key and the line that set it (cmd/internal/tomlfile); any other
// caller sees the field's Go name.
package setting

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Error is one setting refused.
type Error struct {
	// Field points to the field, in the struct that was checked.
	Field any
	// Name is the field's Go name, e.g. "MaxMessageBytes".
	Name string
	// Problem says what is wrong: "is required", "want 1 to 128".
	Problem string
	// Other, when not nil, points to the field that Problem compares
	// Field with ("want at least" RetryMin); OtherName is its Go name.
	Other     any
	OtherName string
}

func (e *Error) Error() string {
	if strings.HasPrefix(e.Problem, Missing) {
		return e.Name + " " + e.Problem
	}
	msg := fmt.Sprintf("%s %v: %s", e.Name, Value(e.Field), e.Problem)
	if e.Other != nil {
		msg += fmt.Sprintf(" %s (%v)", e.OtherName, Value(e.Other))
	}
	return msg
}

// Missing is the Problem of a required setting left empty.
const Missing = "is required"

// Value is what field points to.
func Value(field any) any { return reflect.ValueOf(field).Elem().Interface() }

// Checker collects the problems of one struct.
type Checker struct {
	s    reflect.Value
	errs []error
}

// For returns a Checker of the struct s points to.
func For(s any) *Checker { return &Checker{s: reflect.ValueOf(s).Elem()} }

// Add records that the field that field points to is refused for
// problem.
func (c *Checker) Add(field any, problem string) {
	c.errs = append(c.errs, &Error{Field: field, Name: c.name(field), Problem: problem})
}

// Compare records that field is refused for problem, which compares it
// with other: "want at least" (then the other's name and value).
func (c *Checker) Compare(field any, problem string, other any) {
	c.errs = append(c.errs, &Error{Field: field, Name: c.name(field), Problem: problem, Other: other, OtherName: c.name(other)})
}

// name is the Go name of the field that p points to: "Hostname", or
// "SMTP.Hostname" for a field of a struct field.
func (c *Checker) name(p any) string {
	if n, ok := fieldName(c.s, reflect.ValueOf(p)); ok {
		return n
	}
	panic(fmt.Sprintf("setting: %T is not a field of %s", p, c.s.Type()))
}

func fieldName(s, p reflect.Value) (string, bool) {
	for i := 0; i < s.NumField(); i++ {
		f := s.Field(i)
		if f.Addr().Pointer() == p.Pointer() && f.Type() == p.Type().Elem() {
			return s.Type().Field(i).Name, true
		}
		if f.Kind() == reflect.Struct {
			if n, ok := fieldName(f, p); ok {
				return s.Type().Field(i).Name + "." + n, true
			}
		}
	}
	return "", false
}

// Err returns the problems found, joined, or nil.
func (c *Checker) Err() error { return errors.Join(c.errs...) }

// Required refuses an empty string.
func (c *Checker) Required(v *string) {
	if *v == "" {
		c.Add(v, Missing)
	}
}

// Number is what Positive and Between look at: counts, sizes,
// time.Duration.
type Number interface {
	~int | ~int64
}

// Positive refuses a value below 1.
func Positive[T Number](c *Checker, v *T) {
	if *v <= 0 {
		c.Add(v, "want more than 0")
	}
}

// NotNegative refuses a value below 0.
func NotNegative[T Number](c *Checker, v *T) {
	if *v < 0 {
		c.Add(v, "want 0 or more")
	}
}

// Between refuses a value outside lo to hi.
func Between[T Number](c *Checker, v *T, lo, hi T) {
	if *v < lo || *v > hi {
		c.Add(v, fmt.Sprintf("want %v to %v", lo, hi))
	}
}

// AtLeast refuses a value below the one other points to.
func AtLeast[T Number](c *Checker, v, other *T) {
	if *v < *other {
		c.Compare(v, "want at least", other)
	}
}

// All returns the *Errors in err (one, or several joined), and the
// errors that are not one.
func All(err error) (settings []*Error, others []error) {
	switch e := err.(type) {
	case nil:
	case *Error:
		settings = append(settings, e)
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			s, o := All(x)
			settings, others = append(settings, s...), append(others, o...)
		}
	default:
		others = append(others, err)
	}
	return settings, others
}
