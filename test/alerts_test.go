package test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"mxq/internal/servertest"
)

// The alert rules of docs/examples/alerts.yml are valid (promtool check
// rules) and pass their unit tests (promtool test rules
// docs/examples/alerts_test.yml): each fires on its fault and stays silent
// on the normal case, a drain in progress among them.
func TestAlertRules(t *testing.T) {
	promtool := servertest.LookPath(t, "promtool", "apt-get install -y prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../docs/examples"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// Every rule of alerts.yml has a unit test that fires it and one that
// does not, and a runbook paragraph in docs/operations.md.
func TestAlertRulesCovered(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	rules, tests, runbook := read("../docs/examples/alerts.yml"), read("../docs/examples/alerts_test.yml"), read("../docs/operations.md")
	names := regexp.MustCompile(`(?m)^\s+- alert: (\S+)`).FindAllStringSubmatch(rules, -1)
	if len(names) == 0 {
		t.Fatal("no alert in alerts.yml")
	}
	for _, m := range names {
		name := m[1]
		silent := regexp.MustCompile(`alertname: ` + name + `, exp_alerts: \[\]`)
		fires := regexp.MustCompile(`alertname: ` + name + `\n\s+exp_alerts:\n\s+- `)
		if !silent.MatchString(tests) {
			t.Errorf("alerts_test.yml has no case where %s stays silent", name)
		}
		if !fires.MatchString(tests) {
			t.Errorf("alerts_test.yml has no case where %s fires", name)
		}
		if !strings.Contains(runbook, "**"+name+"**") {
			t.Errorf("docs/operations.md has no runbook paragraph **%s**", name)
		}
	}
}
