package network

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mxq/internal/promdash"
	"mxq/queue"
)

// consumerDown kills listd with SIGKILL, waits for MxqNothingConsumes to
// fire, starts listd again and waits for the alert to clear. The alert
// may fire only after its `for:`, and must fire within the time the
// exporter takes to see the consumer gone (its -reader-idle) plus `for:`
// plus a few scrape and evaluation intervals.
func (m *Monitoring) consumerDown(w *world, watch *AlertWatch) {
	t := w.t
	t.Helper()
	const alert = "MxqNothingConsumes"
	m.ConsumerIdle = queue.DefaultReaderIdle / TimeScale
	var err error
	if m.ConsumerFor, err = ruleFor(w.rules, alert); err != nil {
		t.Fatal(err)
	}
	bound := m.ConsumerIdle + m.ConsumerFor + 8*time.Second
	killed := time.Now()
	w.listd.Signal(syscall.SIGKILL)
	w.listd.Wait(10 * time.Second)
	fired, ok := watch.WaitFiring(alert, true, bound)
	if !ok {
		t.Errorf("%s did not fire within %v of listd's kill (reader idle %v + for %v + 8 s)", alert, bound, m.ConsumerIdle, m.ConsumerFor)
	} else {
		m.ConsumerFired = fired.Sub(killed)
		if m.ConsumerFired < m.ConsumerFor {
			t.Errorf("%s fired %v after listd's kill, before its for: %v", alert, m.ConsumerFired, m.ConsumerFor)
		}
	}
	started := time.Now()
	w.startListd()
	cleared, ok := watch.WaitFiring(alert, false, 30*time.Second)
	if !ok {
		t.Errorf("%s still firing 30 s after listd started again", alert)
		return
	}
	m.ConsumerCleared = cleared.Sub(started)
}

// ruleFor finds the `for:` of the named alert in a rules file's text.
func ruleFor(rules, alert string) (time.Duration, error) {
	for _, r := range strings.Split(rules, "- alert: ")[1:] {
		name, body, _ := strings.Cut(r, "\n")
		if strings.TrimSpace(name) != alert {
			continue
		}
		if m := forLine.FindStringSubmatch(body); m != nil {
			return time.ParseDuration(m[2])
		}
	}
	return 0, fmt.Errorf("the rules have no alert %s with a for:", alert)
}

// checkDashboard runs every query of the example dashboard against the
// run's Prometheus, from start until now. Every query must succeed, and
// every panel must show data except those whose series exist only when
// something went wrong.
func (w *world) checkDashboard(start time.Time) {
	t := w.t
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "examples", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := promdash.Load(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, err := d.Fetch(ctx, "http://"+w.prom.Addr, start, time.Now(), time.Second)
	if err != nil {
		t.Errorf("the dashboard's queries against the run's prometheus: %v", err)
		return
	}
	// Replies other than 250: mxd counts only the codes it gave, and in
	// this run every DATA was answered 250.
	mayBeEmpty := map[string]bool{"Replies other than 250": true}
	for i, p := range d.Panels {
		if len(data[i]) == 0 && !mayBeEmpty[p.Title] {
			t.Errorf("dashboard panel %q shows no data after the run", p.Title)
		}
	}
}
