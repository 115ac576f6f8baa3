package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The architecture's one-way imports: cmd → smtpd, lists, dnsctl → queue
// → go-redis. smtpd, lists and dnsctl declare the small interfaces they
// need and never touch Redis themselves; none of them imports another.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "mxq/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := map[string][]string{
		"mxq/smtpd":  {"github.com/redis/go-redis", "mxq/lists", "mxq/dnsctl", "mxq/cmd"},
		"mxq/lists":  {"github.com/redis/go-redis", "mxq/smtpd", "mxq/dnsctl", "mxq/cmd"},
		"mxq/dnsctl": {"github.com/redis/go-redis", "mxq/smtpd", "mxq/lists", "mxq/cmd"},
		"mxq/queue":  {"mxq/smtpd", "mxq/lists", "mxq/dnsctl", "mxq/cmd"},
	}
	// The shared helpers under internal/ (test clients, real servers for
	// tests, a throwaway Postfix) sit below every layer: any may use them,
	// so they use none.
	helperBans := []string{"github.com/redis/go-redis", "mxq/smtpd", "mxq/lists", "mxq/dnsctl", "mxq/queue", "mxq/cmd"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
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
		seen++
		for _, imp := range p.Imports {
			for _, ban := range bans {
				if imp == ban || strings.HasPrefix(imp, ban+"/") {
					t.Errorf("%s imports %s: imports must point cmd → smtpd, lists, dnsctl → queue → go-redis", p.ImportPath, imp)
				}
			}
		}
	}
	if seen < 2 {
		t.Errorf("go list found only %d of the packages it checks", seen)
	}
}
