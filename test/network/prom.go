package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TimeScale is how much faster than real time the test network's
// monitoring runs: the shipped alert rules' `for:` and the exporter's
// -reader-idle are divided by it, so that an alert meant to wait two
// minutes waits 12 s here. Thresholds on values (ages, ratios) are not
// scaled.
const TimeScale = 10

// Prometheus is a real prometheus server on a host of the lab, scraping
// the lab's daemons every second and evaluating the alert rules every
// second.
type Prometheus struct {
	Addr string // host:port of its HTTP API
	dir  string
}

// ScrapeJob is one job of the scrape config: a name and its targets
// (host:port).
type ScrapeJob struct {
	Name    string
	Targets []string
}

// StartPrometheus writes the config and the rules and starts prometheus
// on h, port 9090. rules is the text of a rules file.
func StartPrometheus(t testing.TB, h *Host, jobs []ScrapeJob, rules string) *Prometheus {
	t.Helper()
	dir := filepath.Join(h.lab.Dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "alerts.yml")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files: [%q]\nscrape_configs:\n", rulesPath)
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %q\n    static_configs:\n      - targets: [", j.Name)
		for i, tg := range j.Targets {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", tg)
		}
		b.WriteString("]\n")
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{Addr: h.IP + ":9090", dir: dir}
	proc := h.Start("prometheus", "prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.Addr, "--log.level=warn")
	waitUntil(t, 30*time.Second, "prometheus to be ready", func() bool {
		if proc.Exited() {
			t.Fatalf("prometheus exited: %v\n%s", proc.err, proc.LogText())
		}
		r, err := (&http.Client{Timeout: time.Second}).Get("http://" + p.Addr + "/-/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	return p
}

// ScaledRules reads a rules file and divides every `for:` by TimeScale.
func ScaledRules(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var bad error
	out := forLine.ReplaceAllStringFunc(string(b), func(line string) string {
		m := forLine.FindStringSubmatch(line)
		// Go reads Prometheus's s, m and h (2m, 30s) alike; a d or w
		// fails here rather than be scaled wrong.
		d, err := time.ParseDuration(m[2])
		if err != nil {
			bad = fmt.Errorf("%s: %q: %v", path, line, err)
			return line
		}
		return m[1] + (d / TimeScale).String()
	})
	return out, bad
}

var forLine = regexp.MustCompile(`(?m)^(\s+for:\s*)(\S+)\s*$`)

// Target is one scrape target as Prometheus reports it.
type Target struct {
	Job, Instance, Health, LastError string
}

// Targets lists the active targets.
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/targets?state=active", &r); err != nil {
		return nil, err
	}
	var out []Target
	for _, a := range r.Data.ActiveTargets {
		out = append(out, Target{Job: a.Labels["job"], Instance: a.Labels["instance"], Health: a.Health, LastError: a.LastError})
	}
	return out, nil
}

// Alert is one alert as Prometheus's /api/v1/alerts reports it.
type Alert struct {
	Name   string
	Labels map[string]string
	State  string // "pending" or "firing"
}

// Key names the alert with its labels other than alertname, severity and
// the scrape's own (job, instance): "MxqHostHeartbeatStale{host=mx1}".
func (a Alert) Key() string {
	var ls []string
	for k, v := range a.Labels {
		switch k {
		case "alertname", "severity", "job", "instance":
		default:
			ls = append(ls, k+"="+v)
		}
	}
	if len(ls) == 0 {
		return a.Name
	}
	slices.Sort(ls)
	return a.Name + "{" + strings.Join(ls, ",") + "}"
}

// Alerts lists the alerts pending or firing now.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/alerts", &r); err != nil {
		return nil, err
	}
	var out []Alert
	for _, a := range r.Data.Alerts {
		out = append(out, Alert{Name: a.Labels["alertname"], Labels: a.Labels, State: a.State})
	}
	return out, nil
}

func (p *Prometheus) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+path, nil)
	if err != nil {
		return err
	}
	r, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	var env struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	dec := json.NewDecoder(r.Body)
	raw := json.RawMessage{}
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Status != "success" {
		return fmt.Errorf("%s: status %q: %s", path, env.Status, env.Error)
	}
	return json.Unmarshal(raw, v)
}

// AlertWatch polls Prometheus's alerts a few times a second and
// remembers, per phase of the run, which alerts fired, and when each
// alert was first seen firing and last seen firing.
type AlertWatch struct {
	p    *Prometheus
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	phase   string
	byPhase map[string]map[string]bool // phase → alert keys seen firing
	firing  map[string]bool            // alert names firing at the last poll
	changed chan struct{}              // closed and replaced at every poll
	errs    int
}

// WatchAlerts starts polling.
func (p *Prometheus) WatchAlerts() *AlertWatch {
	w := &AlertWatch{p: p, stop: make(chan struct{}), done: make(chan struct{}),
		byPhase: map[string]map[string]bool{}, firing: map[string]bool{}, changed: make(chan struct{})}
	go w.run()
	return w
}

func (w *AlertWatch) run() {
	defer close(w.done)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		as, err := w.p.Alerts(ctx)
		cancel()
		w.mu.Lock()
		if err != nil {
			w.errs++
		} else {
			w.firing = map[string]bool{}
			for _, a := range as {
				if a.State != "firing" {
					continue
				}
				w.firing[a.Name] = true
				if w.byPhase[w.phase] == nil {
					w.byPhase[w.phase] = map[string]bool{}
				}
				w.byPhase[w.phase][a.Key()] = true
			}
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// SetPhase names the phase that alerts seen from now on belong to.
func (w *AlertWatch) SetPhase(name string) {
	w.mu.Lock()
	w.phase = name
	w.mu.Unlock()
}

// Stop ends the polling.
func (w *AlertWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// WaitFiring waits until the named alert is firing (want true) or not
// (want false) at a poll, for at most timeout, and returns when that poll
// was answered and whether it came.
func (w *AlertWatch) WaitFiring(name string, want bool, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		now, ch := w.firing[name], w.changed
		w.mu.Unlock()
		if now == want {
			return time.Now(), true
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, false
		case <-w.done:
			return time.Time{}, false
		}
	}
}

// Seen returns, per phase, the alerts seen firing in it, sorted.
func (w *AlertWatch) Seen() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for p, keys := range w.byPhase {
		for k := range keys {
			out[p] = append(out[p], k)
		}
		slices.Sort(out[p])
	}
	return out
}

// Errors is how many polls failed.
func (w *AlertWatch) Errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs
}
