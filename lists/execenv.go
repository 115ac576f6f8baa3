package lists

import (
	"fmt"
	"strings"
)

// ExecEnvelope names the variables an Exec sets from the envelope of each
// delivery. A variable of Exec.Env with one of these names is dropped:
// the envelope always wins, so a route cannot make a program file a
// message under another recipient. CheckEnv refuses them.
var ExecEnvelope = []string{"SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT", "QUEUE_ID"}

// CheckEnv checks variables for Exec.Env: each is NAME=value, NAME made
// of ASCII letters, digits and '_' and not starting with a digit, set
// once, not one of ExecEnvelope; the value has no NUL, CR or LF (a NUL
// cannot be passed to a program at all, a line break would forge lines in
// whatever the program logs or writes).
func CheckEnv(env []string) error {
	seen := map[string]bool{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !validEnvName(name) {
			return fmt.Errorf("%q: want NAME=value, NAME of letters, digits and '_' (e.g. \"PI_CONFIG=/srv/public-inbox/config\")", kv)
		}
		if strings.ContainsAny(value, "\x00\r\n") {
			return fmt.Errorf("%s: the value has a NUL, CR or LF; put such data in a file and name the file", name)
		}
		if isEnvelopeVar(name) {
			return fmt.Errorf("%s: listd sets %s from each message's envelope, and a route cannot change it", name, strings.Join(ExecEnvelope, ", "))
		}
		if seen[name] {
			return fmt.Errorf("%s: set twice", name)
		}
		seen[name] = true
	}
	return nil
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isEnvelopeVar(name string) bool {
	for _, v := range ExecEnvelope {
		if name == v {
			return true
		}
	}
	return false
}

// withRouteEnv puts the route's variables into base, the environment
// Exec builds (PATH and the envelope): PATH from route replaces base's,
// a route variable named in ExecEnvelope is dropped, and base's
// envelope variables come last.
func withRouteEnv(route, base []string) []string {
	if len(route) == 0 {
		return base
	}
	out := make([]string, 0, len(route)+len(base))
	routePath := false
	for _, kv := range route {
		name, _, _ := strings.Cut(kv, "=")
		if isEnvelopeVar(name) {
			continue
		}
		routePath = routePath || name == "PATH"
		out = append(out, kv)
	}
	for _, kv := range base {
		if routePath && strings.HasPrefix(kv, "PATH=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
