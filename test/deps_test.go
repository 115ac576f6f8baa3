package test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The architecture's one-way imports: cmd → smtpd, lists, dnsctl →
// queue, maintenance → redisha → go-redis. smtpd, lists and dnsctl
// declare the small interfaces they need and never touch Redis
// themselves; none of them imports another. queue and maintenance keep
// their own keys and know nothing of each other. redisha, the connection
// to Redis and its switch-over, knows no key and none of the packages
// above it. address, the address rules, and setting, the checks of
// settings, are leaves any of them may import: they import nothing of
// mxq.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "mxq/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := map[string][]string{
		"mxq/smtpd":       {"github.com/redis/go-redis", "mxq/redisha", "mxq/maintenance", "mxq/lists", "mxq/dnsctl", "mxq/cmd"},
		"mxq/lists":       {"github.com/redis/go-redis", "mxq/redisha", "mxq/maintenance", "mxq/smtpd", "mxq/dnsctl", "mxq/cmd"},
		"mxq/dnsctl":      {"github.com/redis/go-redis", "mxq/redisha", "mxq/smtpd", "mxq/lists", "mxq/cmd"},
		"mxq/queue":       {"mxq/maintenance", "mxq/smtpd", "mxq/lists", "mxq/dnsctl", "mxq/cmd"},
		"mxq/maintenance": {"mxq/queue", "mxq/smtpd", "mxq/lists", "mxq/dnsctl", "mxq/cmd"},
		"mxq/redisha":     {"mxq"},
		"mxq/address":     {"github.com/redis/go-redis", "mxq"},
		"mxq/setting":     {"github.com/redis/go-redis", "mxq"},
	}
	// The shared helpers under internal/ (test clients, real servers for
	// tests, a throwaway Postfix and Exim) sit below every layer: any may use them,
	// so they use none.
	helperBans := []string{"github.com/redis/go-redis", "mxq/smtpd", "mxq/lists", "mxq/dnsctl", "mxq/queue", "mxq/maintenance", "mxq/redisha", "mxq/cmd"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		bans, ok := forbidden[p.ImportPath]
		if strings.HasPrefix(p.ImportPath, "mxq/internal/") {
			bans, ok = helperBans, true
		}
		if !ok {
			continue
		}
		seen[p.ImportPath] = true
		for _, imp := range p.Imports {
			for _, ban := range bans {
				if imp == ban || strings.HasPrefix(imp, ban+"/") {
					t.Errorf("%s imports %s: imports must point cmd → smtpd, lists, dnsctl → queue, maintenance → redisha → go-redis; address and setting import nothing of mxq", p.ImportPath, imp)
				}
			}
		}
	}
	for pkg := range forbidden {
		if !seen[pkg] {
			t.Errorf("go list did not find %s, which the rule names", pkg)
		}
	}
}

// What is deployed is the commands under cmd/ and what they import. The
// tools (tools/: the bench, the load generator) and the helpers of tests
// (internal/: real servers, test clients, a throwaway Postfix, the
// dashboard reader) are not, so that no deployed program may depend on
// them.
func TestDeployedImportsNoTools(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "mxq/cmd/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "mxq/cmd/mxd") || !slices.Contains(deps, "mxq/smtpd") {
		t.Fatalf("go list -deps mxq/cmd/... lists neither mxq/cmd/mxd nor mxq/smtpd: %q", deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "mxq/tools/") || strings.HasPrefix(p, "mxq/internal/") {
			t.Errorf("a program under cmd/ depends on %s: tools and test helpers are not deployed", p)
		}
	}
}
