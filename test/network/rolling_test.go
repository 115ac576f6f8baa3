package network

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mxq/internal/promdash"
	"mxq/queue"
)

// world is the whole test network, up and running.
type world struct {
	t      *testing.T
	lab    *Lab
	zone   *Zone
	dns1   *Host
	dns2   *Host
	lists  *Host
	sender *Host
	mxd    []*MXD
	redis  *RedisSet
	listd  *Proc
	q      *queue.Queue
	pf     *Postfix

	redisURL string
	sink     *Sink
	listdCfg string
	// prom scrapes every mxd, listd and the queue's exporter, with the
	// shipped alert rules at TimeScale.
	prom  *Prometheus
	rules string
}

const listRcpt = "~team/announce@lists.example.org"

func buildWorld(t *testing.T) *world {
	t.Helper()
	lab := NewLab(t)
	w := &world{t: t, lab: lab}
	w.zone = &Zone{Name: "lists.example.org", MXTTL: 3, KeyName: "mxq-update"}
	writeKey(t, lab.Dir, w.zone)
	w.dns1 = lab.AddHost("dns1", "")
	w.dns2 = lab.AddHost("dns2", "")
	var mxHosts []*Host
	for i := 1; i <= 3; i++ {
		mxHosts = append(mxHosts, lab.AddHost(fmt.Sprintf("mx%d", i), ""))
	}
	// The sender resolves through the primary, so that it sees an MX
	// record's removal as soon as dnsctl has made it; so does the lists
	// host, where the operator runs dnsctl.
	w.lists = lab.AddHost("lists", w.dns1.IP)
	w.sender = lab.AddHost("sender", w.dns1.IP)
	redis2 := lab.AddHost("redis2", "")
	redis3 := lab.AddHost("redis3", "")
	ips := map[string]string{"dns1": w.dns1.IP, "dns2": w.dns2.IP, "lists": w.lists.IP, "sender": w.sender.IP}
	for i, h := range mxHosts {
		ips[fmt.Sprintf("mx%d", i+1)] = h.IP
	}
	StartKnot(t, w.dns2, w.zone, w.dns1.IP) // secondaries first: a NOTIFY to a server not yet up is lost
	StartBIND(t, w.dns1, w.zone, ips, w.dns2.IP)
	waitSOA(t, nil, w.dns2.IP+":53", w.zone.Name)

	// Everything finds the queue's primary through the sentinels.
	w.redis = StartRedisSet(t, w.lists, redis2, redis3)
	w.redisURL = w.redis.URL()
	q, err := queue.Open(w.redisURL, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	w.q = q
	w.sink = StartSink(t, w.lists)
	w.startListd()
	// listd publishes its routes; mxd accepts them.
	waitUntil(t, 20*time.Second, "listd to publish its routes", func() bool {
		reg, err := q.Registry(context.Background())
		return err == nil && len(reg) > 0
	})
	for i, h := range mxHosts {
		// 250 only once a replica has the message too: a failover
		// loses none.
		m := NewMXD(t, h, fmt.Sprintf("mx%d.%s", i+1, w.zone.Name), w.zone.Name, w.redisURL, w.dns1.IP+":53", "replicas = 1")
		m.Start(t, command("mxd"))
		w.mxd = append(w.mxd, m)
	}
	waitUntil(t, 20*time.Second, "three heartbeats", func() bool {
		hs, err := q.Hosts(context.Background())
		alive := 0
		for _, h := range hs {
			if h.Alive {
				alive++
			}
		}
		return err == nil && alive == 3
	})
	w.pf = StartPostfix(t, w.sender, w.zone.Name)
	w.startMonitoring(mxHosts)
	return w
}

// startMonitoring starts the queue's exporter and Prometheus on the lists
// host, as docs/operations.md deploys them, and waits until every target
// is scraped.
func (w *world) startMonitoring(mxHosts []*Host) {
	t := w.t
	t.Helper()
	exporter := w.lists.IP + ":9127"
	p := w.lists.Start("exporter", command("mxq"), "-redis", w.redisURL, "exporter", "-listen", exporter,
		"-reader-idle", (queue.DefaultReaderIdle / TimeScale).String())
	waitTCP(t, p, exporter)
	var err error
	if w.rules, err = ScaledRules(filepath.Join("..", "..", "docs", "examples", "alerts.yml")); err != nil {
		t.Fatal(err)
	}
	mxd := ScrapeJob{Name: "mxd"}
	for _, m := range w.mxd {
		mxd.Targets = append(mxd.Targets, m.Metrics)
	}
	jobs := []ScrapeJob{mxd, {Name: "listd", Targets: []string{w.lists.IP + ":9126"}}, {Name: "mxq", Targets: []string{exporter}}}
	w.prom = StartPrometheus(t, w.lists, jobs, w.rules)
	waitUntil(t, 20*time.Second, "prometheus to scrape every target", func() bool {
		tgs, _ := w.prom.Targets(context.Background())
		up := 0
		for _, tg := range tgs {
			if tg.Health == "up" {
				up++
			}
		}
		return up == len(w.mxd)+2
	})
}

func (w *world) startListd() {
	w.t.Helper()
	if w.listdCfg == "" {
		w.listdCfg = filepath.Join(w.lab.Dir, "listd.toml")
		cfg := fmt.Sprintf(`redis = %q
metrics_listen = "%s:9126"
lease = "5s"
retry_min = "500ms"
retry_max = "5s"
# Acknowledgements wait for a replica, so a failover loses none.
replicas = 1

[[route]]
match = "~*/*@%s"
smtp = %q
`, w.redisURL, w.lists.IP, w.zone.Name, w.sink.Addr)
		if err := os.WriteFile(w.listdCfg, []byte(cfg), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.listd = w.lists.Start("listd", command("listd"), "-config", w.listdCfg)
}

// dnsctl runs the maintenance command on the lists host, as an operator
// would, with the defaults that find the servers: the primary from the
// SOA's MNAME, every authoritative address from the NS records.
func (w *world) dnsctl(args ...string) (map[string]any, string, error) {
	base := []string{
		"-zone", w.zone.Name, "-key", w.zone.KeyFile, "-redis", w.redisURL,
		"-state", filepath.Join(w.lab.Dir, "dnsctl-state.json"), "-margin", "1s", "-json",
	}
	argv := append([]string{"netns", "exec", w.lists.NS, command("dnsctl")}, append(append(args[:1:1], base...), args[1:]...)...)
	cmd := exec.Command("ip", argv...)
	// Progress lines go to the lab's dnsctl.log, printed on failure.
	log, err := os.OpenFile(filepath.Join(w.lab.Dir, "dnsctl.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", err
	}
	defer log.Close()
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, log
	err = cmd.Run()
	var rep map[string]any
	json.Unmarshal(stdout.Bytes(), &rep)
	return rep, stdout.String(), err
}

// metrics fetches a host's Prometheus metrics.
func metricsText(addr string) string {
	c := http.Client{Timeout: 2 * time.Second}
	r, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// drain takes one host through drain, restart and restore, and measures.
func (w *world) drain(m *MXD) DrainTimes {
	t := w.t
	t.Helper()
	dt := DrainTimes{Host: m.Name}
	// Watch for the 421 phase: the host itself reports draining.
	type snap struct{ accepted float64 }
	var at421 *snap
	others := func() float64 {
		var n float64
		for _, o := range w.mxd {
			if o != m {
				n += metric(metricsText(o.Metrics), `mxd_transactions_total{code="250"}`)
			}
		}
		return n
	}
	stop := make(chan struct{})
	seen := make(chan *snap, 1)
	go func() {
		for done := false; ; {
			select {
			case <-stop:
				// dnsctl may say "safe" within one poll of the host's
				// first draining heartbeat: look once more. The host
				// stays drained until restore, so the baseline holds.
				done = true
			case <-time.After(50 * time.Millisecond):
			}
			hs, _ := w.q.Hosts(context.Background())
			for _, h := range hs {
				if h.Host == m.Name && h.Alive && h.Draining {
					seen <- &snap{accepted: metric(metricsText(m.Metrics), "mxd_sessions_accepted_total")}
					return
				}
			}
			if done {
				seen <- nil
				return
			}
		}
	}()
	start := time.Now()
	othersBefore := others()
	rep, out, err := w.dnsctl("drain", m.Name)
	close(stop)
	at421 = <-seen
	if err != nil || rep["safe"] != true {
		t.Fatalf("dnsctl drain %s: %v\n%s", m.Name, err, out)
	}
	dt.Total = time.Since(start)
	text := metricsText(m.Metrics)
	if at421 == nil {
		t.Fatalf("%s never reported draining during dnsctl drain", m.Name)
	}
	dt.SessionsAfter421 = metric(text, "mxd_sessions_accepted_total") - at421.accepted
	dt.StragglersRefused = metric(text, `mxd_connections_refused_total{reason="draining"}`)
	dt.OthersTransactionsDuring = others() - othersBefore
	steps, _ := rep["steps"].([]any)
	for _, s := range steps {
		st, _ := s.(map[string]any)
		a, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(st["start"]))
		b, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(st["end"]))
		switch st["phase"] {
		case "removing", "removed", "propagated":
			dt.Propagation += b.Sub(a)
		case "ttl-waited":
			dt.TTL += b.Sub(a)
		case "flagged", "drained":
			dt.Flush += b.Sub(a)
		}
	}
	// The host is out of service: stop and start its mxd, as an upgrade would.
	m.Proc.Signal(syscall.SIGTERM)
	if err, ok := m.Proc.Wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("%s after SIGTERM: exited %v, err %v", m.Name, ok, err)
	}
	m.Start(t, command("mxd"))
	waitUntil(t, 10*time.Second, m.Name+" heartbeat after restart", func() bool {
		hs, _ := w.q.Hosts(context.Background())
		for _, h := range hs {
			if h.Host == m.Name && h.Alive && time.Since(h.LastSeen) < time.Second {
				return true
			}
		}
		return false
	})
	if _, out, err := w.dnsctl("restore", m.Name); err != nil {
		t.Fatalf("dnsctl restore %s: %v\n%s", m.Name, err, out)
	}
	return dt
}

var fivexx = regexp.MustCompile(`said: 5\d\d|status=bounced`)

func TestRollingMaintenance(t *testing.T) {
	w := buildWorld(t)
	load := StartLoad(w.sender.IP+":25", "load@sender."+w.zone.Name, listRcpt, 10)
	defer func() {
		if t.Failed() {
			load.Stop()
		}
	}()
	watch := w.prom.WatchAlerts()
	defer watch.Stop()
	var mon Monitoring
	var marks []promdash.Mark
	start := time.Now()
	phase := func(name string) {
		t.Logf("%s phase %q (submitted so far: %d)", time.Now().Format("15:04:05.000"), name, load.Count())
		load.SetPhase(name)
		watch.SetPhase(name)
		marks = append(marks, promdash.Mark{T: time.Now(), Label: name})
	}
	phase("warm-up")
	time.Sleep(3 * time.Second) // warm-up: mail flows through all three
	var phases []string
	var drains []DrainTimes
	for _, m := range w.mxd {
		name := "drain " + strings.SplitN(m.Name, ".", 2)[0]
		phases = append(phases, name)
		phase(name)
		drains = append(drains, w.drain(m))
	}

	phases = append(phases, "kill -9 mxd")
	phase("kill -9 mxd")
	victim := w.mxd[1]
	// Kill it with a session open if one shows up (sessions last a few
	// milliseconds at this rate), else right after it accepted a message.
	before := metric(metricsText(victim.Metrics), `mxd_transactions_total{code="250"}`)
	open := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if metric(metricsText(victim.Metrics), "mxd_sessions") > 0 {
			open = true
			break
		}
	}
	if !open {
		waitUntil(t, 30*time.Second, victim.Name+" to receive", func() bool {
			return metric(metricsText(victim.Metrics), `mxd_transactions_total{code="250"}`) > before
		})
	}
	t.Logf("kill -9 %s (session open: %v)", victim.Name, open)
	victim.Proc.Signal(syscall.SIGKILL)
	victim.Proc.Wait(10 * time.Second)
	time.Sleep(3 * time.Second) // senders find the other MX hosts
	victim.Start(t, command("mxd"))

	// listd stays down until Prometheus pages that nothing consumes, and
	// the alert must clear once it is back.
	phases = append(phases, "kill -9 listd")
	phase("kill -9 listd")
	time.Sleep(2 * time.Second)
	mon.consumerDown(w, watch)

	phases = append(phases, phaseSwitch, phaseKill, phaseBack)
	rt := w.redisPhases(phase)

	phases = append(phases, "cool-down")
	phase("cool-down")
	time.Sleep(3 * time.Second)
	sent, errs := load.Stop()
	if len(errs) > 0 {
		t.Errorf("%d submissions to the sender's Postfix failed, e.g. %s", len(errs), errs[0])
	}

	// Everything must arrive: Postfix empties its queue, the queue drains.
	deadline := time.Now().Add(3 * time.Minute)
	var got map[string][]time.Time
	for {
		w.pf.Flush()
		var err error
		got, err = Delivered(w.sink.Dir)
		if err != nil {
			t.Fatal(err)
		}
		depth, _ := w.q.Depth(context.Background())
		if w.pf.QueueCount() == 0 && depth == 0 && len(got) >= len(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not settled after 3 minutes: postfix queue %d, redis depth %d, delivered %d of %d", w.pf.QueueCount(), depth, len(got), len(sent))
			break
		}
		time.Sleep(2 * time.Second)
	}
	watch.Stop()
	w.drawDashboard(start, marks)
	o := Compare(sent, got)
	o.CountDeferrals(w.pf.Deferrals(), sent)
	mon.Alerts, mon.PollErrors = watch.Seen(), watch.Errors()
	var table bytes.Buffer
	o.Print(&table, phases, drains, rt, mon)
	t.Log("\n" + table.String())
	os.WriteFile(filepath.Join(os.TempDir(), "mxq-network-summary.txt"), table.Bytes(), 0o644)

	if o.Missing > 0 {
		t.Errorf("%d messages never delivered, e.g. %v", o.Missing, o.MissingIDs)
	}
	for p, n := range o.DupByPhase {
		if n > 0 && !strings.HasPrefix(p, "kill -9") {
			t.Errorf("%d duplicates in phase %q (only kill -9 may cause them): %v", n, p, o.DuplicateIDs)
		}
	}
	// A sender waits for the reply to DATA while mxd rides through the
	// switch-over or the failover: it never defers.
	for _, p := range []string{phaseSwitch, phaseKill} {
		if n := o.Deferrals[p]; n > 0 {
			t.Errorf("the sender deferred %d times in phase %q", n, p)
		}
	}
	if w.pf.QueueCount() != 0 {
		t.Errorf("postfix still holds %d messages", w.pf.QueueCount())
	}
	if bad := fivexx.FindAllString(w.pf.Log(), 5); len(bad) > 0 {
		t.Errorf("postfix saw a 5xx or bounced: %v", bad)
	}
	// A drain is maintenance, not an outage: it pages nobody.
	for _, p := range phases {
		if strings.HasPrefix(p, "drain ") && len(mon.Alerts[p]) > 0 {
			t.Errorf("alerts fired during %q: %v", p, mon.Alerts[p])
		}
	}
	for _, d := range drains {
		if d.SessionsAfter421 > 0 {
			t.Errorf("%s: %v sessions reached it after its 421 phase began", d.Host, d.SessionsAfter421)
		}
		if d.OthersTransactionsDuring == 0 {
			t.Errorf("%s: the other hosts took no mail while it was drained", d.Host)
		}
	}
}
