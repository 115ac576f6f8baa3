package test

import (
	"os/exec"
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
