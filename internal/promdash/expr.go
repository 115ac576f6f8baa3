package promdash

import (
	"fmt"
	"slices"
	"strings"
)

// Words of PromQL that are not metric names where a metric name could
// stand. PromQL's keywords are case-insensitive.
var (
	// The next parenthesis after one of these holds label names.
	labelListWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	keywords       = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true}
	// An aggregation may have its by or without clause before its
	// parenthesis: sum by (code) (rate(x[1m])).
	aggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
)

// Metrics returns the names of the metrics expr reads, sorted and each
// once: the words that stand where a metric name stands, neither a
// function, an aggregation, a keyword, nor a label name (inside braces or
// a by/on list), nor a duration. It fails, naming the offset, when a
// parenthesis, brace or bracket is not closed or is closed by another
// kind, or when a quoted string does not end.
func Metrics(expr string) ([]string, error) {
	type open struct {
		c      byte
		at     int
		labels bool // a by/without/on/ignoring/group_* list
	}
	var stack []open
	seen := map[string]bool{}
	labelList := false
	fail := func(format string, args ...any) ([]string, error) {
		return nil, fmt.Errorf("query %q: %s", expr, fmt.Sprintf(format, args...))
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(expr, i)
			if end < 0 {
				return fail("the string at offset %d does not end", i)
			}
			i = end
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, open{c: c, at: i, labels: c == '(' && labelList})
			i++
		case c == ')' || c == '}' || c == ']':
			want := map[byte]byte{')': '(', '}': '{', ']': '['}[c]
			if len(stack) == 0 {
				return fail("%q at offset %d closes nothing", c, i)
			}
			top := stack[len(stack)-1]
			if top.c != want {
				return fail("%q at offset %d closes %q opened at offset %d", c, i, top.c, top.at)
			}
			stack = stack[:len(stack)-1]
			i++
		case isDigit(c) || c == '.' && i+1 < len(expr) && isDigit(expr[i+1]):
			// A number or a duration (5m, 1h30m, 1e3, 0x1f).
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			i = j
			if len(stack) > 0 {
				if top := stack[len(stack)-1]; top.c != '(' || top.labels {
					break // a label name, or inside a range
				}
			}
			lw := strings.ToLower(word)
			if labelListWords[lw] {
				labelList = true
				continue
			}
			if keywords[lw] || nextByte(expr, j) == '(' {
				break
			}
			if next := strings.ToLower(nextWord(expr, j)); aggregations[lw] && (next == "by" || next == "without") {
				break
			}
			seen[word] = true
		default:
			i++
		}
		labelList = false
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		return fail("%q opened at offset %d is not closed", top.c, top.at)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// stringEnd returns the offset just past the string literal that starts at
// expr[i], or -1 when it does not end. Backquoted strings have no escapes.
func stringEnd(expr string, i int) int {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j + 1
		}
	}
	return -1
}

func nextByte(s string, i int) byte {
	for ; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

func nextWord(s string, i int) string {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	j := i
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	return s[i:j]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':'
}

func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }
