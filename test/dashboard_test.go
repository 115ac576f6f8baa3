package test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mxq/internal/promdash"
	"mxq/internal/servertest"
)

// The example dashboard reads only metrics the programs export: every
// panel has a title and a query, each query reads a metric, and each
// metric name in them is a string in the code of mxd, listd or mxq
// exporter (ALERTS is Prometheus's own). And Prometheus's parser accepts
// every query: promtool checks them as recording rules. (That every panel
// shows data is checked by the test network, against its Prometheus.)
func TestDashboardQueries(t *testing.T) {
	f, err := os.Open("../docs/examples/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := promdash.Load(f)
	if err != nil {
		t.Fatal(err)
	}

	var code strings.Builder
	for _, dir := range []string{"../smtpd", "../cmd", "../lists", "../queue"} {
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			code.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	exported := func(name string) bool {
		if name == "ALERTS" || strings.Contains(code.String(), strconv.Quote(name)) {
			return true
		}
		// A histogram's series are named after it.
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(code.String(), strconv.Quote(base)) {
				return true
			}
		}
		return false
	}

	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for i, p := range d.Panels {
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("panel %d has no title", i+1)
		}
		if len(p.Queries) == 0 {
			t.Errorf("panel %d %q has no query", i+1, p.Title)
		}
		for j, q := range p.Queries {
			names, err := promdash.Metrics(q)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			} else if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no metric", p.Title, q)
			}
			for _, name := range names {
				if !exported(name) {
					t.Errorf("panel %q: query %q reads %s, which no program exports", p.Title, q, name)
				}
			}
			fmt.Fprintf(&rules, "      - record: dashboard:panel%d:query%d\n        expr: %s\n", i+1, j+1, strconv.Quote(q))
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d queries in the dashboard", n)
	}

	promtool := servertest.LookPath(t, "promtool", "apt-get install -y prometheus")
	file := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}
