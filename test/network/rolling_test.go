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

	"mxq/queue"
	"mxq/smtpd"
)

// world is the whole test network, up and running.
type world struct {
	t      *phasedT
	lab    *Lab
	zone   *Zone
	dns1   *Host
	dns2   *Host
	lists  *Host
	sender *Host
	mxd    []*MXD
	redis  *RedisSet
	// filters are the MX hosts' rspamds, the milter of each mxd.
	filters *Filters
	listd   *Proc
	q       *queue.Queue
	pf      *Postfix

	redisURL string
	sink     *Sink
	listdCfg string
	// prom scrapes every mxd, listd and the queue's exporter, with the
	// shipped alert rules at TimeScale.
	prom  *Prometheus
	rules string
}

const listRcpt = "~team/announce@lists.example.org"

func buildWorld(t *phasedT) *world {
	t.Helper()
	lab := NewLab(t)
	t.logs = lab.Results
	lab.LogGoRedis()
	w := &world{t: t, lab: lab}
	w.zone = &Zone{Name: "lists.example.org", MXTTL: 3, KeyName: "mxq-update"}
	writeKey(t, lab.Dir, w.zone)
	w.dns1 = lab.AddHost("dns1", "")
	w.dns2 = lab.AddHost("dns2", "")
	var mxHosts []*Host
	for i := 1; i <= 3; i++ {
		mxHosts = append(mxHosts, lab.AddHost(fmt.Sprintf("mx%d", i), ""))
	}
	// rspamd is the slowest server to start: it starts first, beside
	// the others.
	w.filters = StartFilters(t, mxHosts)
	// The sender resolves through the primary, so that it sees an MX
	// record's removal as soon as dnsctl has made it; so does the lists
	// host, where the operator runs dnsctl.
	w.lists = lab.AddHost("lists", w.dns1.IP)
	// The sender sends with DANE, through a validating resolver (unbound
	// on res) that caches nothing, so that it still sees an MX record's
	// removal at once; glibc passes the resolver's AD bit on only with
	// trust-ad (resolv.conf(5)).
	res := lab.AddHost("res", "")
	w.sender = lab.AddHost("sender", res.IP)
	if err := os.WriteFile(filepath.Join("/etc/netns", w.sender.NS, "resolv.conf"),
		[]byte("nameserver "+res.IP+"\noptions timeout:1 attempts:2 trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	redis2 := lab.AddHost("redis2", "")
	redis3 := lab.AddHost("redis3", "")
	ips := map[string]string{"dns1": w.dns1.IP, "dns2": w.dns2.IP, "lists": w.lists.IP, "sender": w.sender.IP}
	for i, h := range mxHosts {
		ips[fmt.Sprintf("mx%d", i+1)] = h.IP
	}
	StartKnot(t, w.dns2, w.zone, w.dns1.IP) // secondaries first: a NOTIFY to a server not yet up is lost
	StartBINDSigned(t, w.dns1, w.zone, ips, w.dns2.IP)
	waitSOA(t, nil, w.dns2.IP+":53", w.zone.Name)
	waitUntil(t, 20*time.Second, "the signed zone on dns2", func() bool { return len(DNSKEYs(w.dns2.IP+":53", w.zone.Name)) > 0 })
	StartUnbound(t, res, w.zone.Name, w.dns1.IP, "cache-max-ttl: 0", "cache-max-negative-ttl: 0")

	// Everything finds the queue's primary through the sentinels.
	w.redis = StartRedisSet(t, w.lists, redis2, redis3)
	w.redisURL = w.redis.URL()
	q, err := queue.Open(w.redisURL, queue.DefaultOptions())
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
	w.filters.Wait(t)
	for i, h := range mxHosts {
		// 250 only once a replica has the message too: a failover
		// loses none.
		name := fmt.Sprintf("mx%d.%s", i+1, w.zone.Name)
		live := w.certDir(name, "live")
		writeMXCert(t, live, name)
		m := NewMXD(t, h, name, w.zone.Name, w.redisURL, w.dns1.IP+":53", "replicas = 1", w.filters.Milter(i),
			fmt.Sprintf("tls_cert = %q", filepath.Join(live, "cert.pem")), fmt.Sprintf("tls_key = %q", filepath.Join(live, "key.pem")))
		m.Start(t, command("mxd"))
		w.mxd = append(w.mxd, m)
	}
	// Each MX host's key is published (TLSA 3 1 1) before the sender
	// starts, as the operator would before turning DANE on.
	errs := make(chan error, len(w.mxd))
	for _, m := range w.mxd {
		go func() {
			_, out, err := w.dnsctl("tlsa", "publish", "-cert", filepath.Join(w.certDir(m.Name, "live"), "cert.pem"), m.Name)
			if err != nil {
				err = fmt.Errorf("dnsctl tlsa publish %s: %v\n%s", m.Name, err, out)
			}
			errs <- err
		}()
	}
	for range w.mxd {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
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
	w.pf = StartPostfix(t, w.sender, w.zone.Name, "smtp_tls_security_level = dane", "smtp_dns_support_level = dnssec", "smtp_tls_loglevel = 1")
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
		"-state", filepath.Join(w.lab.Dir, "dnsctl-state.json"), "-margin", "1s", "-json", "-tlsa-ttl", "3s",
	}
	sub := 1 // "drain", or "tlsa publish"
	if args[0] == "tlsa" {
		sub = 2
	}
	argv := append([]string{"netns", "exec", w.lists.NS, command("dnsctl")}, append(append(args[:sub:sub], base...), args[sub:]...)...)
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

// certDir is where the certificates of an MX host are: "live" is what
// its mxd loads.
func (w *world) certDir(host, which string) string {
	return filepath.Join(w.lab.Dir, "certs", host, which)
}

// rollover changes m's certificate to a new key with dnsctl tlsa
// rollover, whose hook installs the files and reloads mxd with SIGHUP.
func (w *world) rollover(m *MXD) {
	t := w.t
	t.Helper()
	next, live := w.certDir(m.Name, "next"), w.certDir(m.Name, "live")
	writeMXCert(t, next, m.Name)
	hook := fmt.Sprintf("mv %s/cert.pem %s/key.pem %s/ && kill -HUP %d", next, next, live, m.Proc.Pid())
	if _, out, err := w.dnsctl("tlsa", "rollover", "-cert", filepath.Join(next, "cert.pem"), m.Name, "--", "sh", "-c", hook); err != nil {
		t.Fatalf("dnsctl tlsa rollover %s: %v\n%s", m.Name, err, out)
	}
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

// phaseTLS is the phase of an MX host's certificate rollover.
const phaseTLS = "tls rollover mx2"

// phaseRspamd is the phase of the restart of every MX host's rspamd.
const phaseRspamd = "restart rspamd"

// restartRspamd restarts the rspamd of every MX host at once under the
// load, then lets the load run 2 s more, and measures.
func (w *world) restartRspamd() RspamdRestart {
	w.t.Helper()
	counts := func() (replays, faults float64) {
		for _, m := range w.mxd {
			text := metricsText(m.Metrics)
			replays += metricSum(text, "mxd_milter_replays_total")
			faults += metricSum(text, "mxd_milter_faults_total")
		}
		return replays, faults
	}
	replays, faults := counts()
	var r RspamdRestart
	r.Took = w.filters.Restart(w.t)
	time.Sleep(2 * time.Second) // mail submitted once rspamd is back is the phase's too
	replays2, faults2 := counts()
	r.Replays, r.Faults = replays2-replays, faults2-faults
	return r
}

var fivexx = regexp.MustCompile(`said: 5\d\d|status=bounced`)

// danePostfixUntrusted is what Postfix (smtp_tls_loglevel = 1) logs of a
// TLS connection whose certificate no TLSA record matched.
var danePostfixUntrusted = regexp.MustCompile(`(Untrusted|Trusted|Anonymous) TLS connection established to [^ ]+`)

func TestRollingMaintenance(tt *testing.T) {
	t := newPhasedT(tt)
	w := buildWorld(t)
	failovers := w.redis.WatchFailovers(t.Logf)
	defer failovers.Stop()
	load := StartLoad(w.sender.IP+":25", "load@sender."+w.zone.Name, listRcpt, 10)
	defer func() {
		if t.Failed() {
			load.Stop()
		}
	}()
	watch := w.prom.WatchAlerts()
	defer watch.Stop()
	var mon Monitoring
	var rides RideLog
	start := time.Now()
	phase := func(name string) {
		t.Logf("%s phase %q (submitted so far: %d)", time.Now().Format("15:04:05.000"), name, load.Count())
		load.SetPhase(name)
		watch.SetPhase(name)
		failovers.SetPhase(name)
		t.SetPhase(name)
		rides.Mark(name, w.rides())
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

	// A certificate rollover with DANE: a new key for mx2, its TLSA
	// record published first, the old one retired last.
	phases = append(phases, phaseTLS)
	phase(phaseTLS)
	w.rollover(w.mxd[1])

	// Every MX host's rspamd restarted at once: mxd rides through.
	phases = append(phases, phaseRspamd)
	phase(phaseRspamd)
	rr := w.restartRspamd()
	t.Logf("rspamd restarted in %s; mxd sent %.0f conversations again, %.0f messages got the default action", rr.took(), rr.Replays, rr.Faults)

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

	phases = append(phases, phaseSwitch, phaseKill, phaseBack, phaseTwice)
	rt := w.redisPhases(phase)

	phases = append(phases, "cool-down")
	phase("cool-down")
	time.Sleep(3 * time.Second)
	sent, spam, errs := load.Stop()
	t.SetPhase("end of the run: delivery of every message")
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
		// Only legitimate mail counts: spam that got through must not
		// end the wait early.
		legit := 0
		for id := range sent {
			if len(got[id]) > 0 {
				legit++
			}
		}
		if w.pf.QueueCount() == 0 && depth == 0 && legit == len(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not settled after 3 minutes: postfix queue %d, redis depth %d, delivered %d of %d", w.pf.QueueCount(), depth, legit, len(sent))
			break
		}
		time.Sleep(2 * time.Second)
	}
	rides.Mark("", w.rides())
	watch.Stop()
	failovers.Stop()
	rt.Failovers = failovers.Seen()
	t.SetPhase("end of the run: checks over every phase")
	w.checkDashboard(start)
	o := Compare(sent, got)
	o.CountDeferrals(w.pf.Deferrals(), sent, spam)
	bounced := w.pf.LinesByMessage(func(l string) bool { return strings.Contains(l, "status=bounced") })
	o.CountSpam(spam, got, bounced)
	mon.Alerts, mon.PollErrors = watch.Seen(), watch.Errors()
	var table bytes.Buffer
	o.Print(&table, phases, drains, rt, mon)
	fmt.Fprintf(&table, "\nrspamd on every MX host restarted at once (SIGTERM, started again with its database): back in %s; "+
		"mxd sent %.0f conversations again on a new connection, %.0f messages got the milter's default action\n", rr.took(), rr.Replays, rr.Faults)
	fmt.Fprintln(&table)
	rides.Print(&table)
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
	// switch-over or the failover: it never defers, and no mxd answers
	// it 4xx (a Postfix that gets one tries the next MX host, and logs
	// no deferral if that one takes the message). Two failovers in a
	// row usually keep the queue away for 15 s; when the sentinels split
	// their vote on the second, for 20 s more (see the package doc), and
	// then 4xx answers after ride_through are what mxd promises. Nor
	// does a DANE sender defer through a certificate rollover done in
	// dnsctl's order.
	rideThrough := smtpd.Defaults().RideThrough
	for _, p := range []string{phaseSwitch, phaseKill, phaseTwice, phaseTLS, phaseRspamd} {
		if p == phaseTwice && rt.Twice.Failover+5*time.Second > rideThrough {
			t.Logf("phase %q: the queue took no confirmed write for %v, more than mxd's ride_through (%v) less 5 s: "+
				"4xx and deferrals not checked", p, round(rt.Twice.Failover), rideThrough)
			continue
		}
		if n := o.Deferrals[p]; n > 0 {
			t.Errorf("the sender deferred %d times in phase %q", n, p)
		}
		if n := rides.In(p).GaveUp; n > 0 {
			t.Errorf("mxd answered 4xx %.0f times after riding through in phase %q", n, p)
		}
	}
	// The phase is two failovers, or it tested less than it says.
	if fs := failovers.In(phaseTwice); len(fs) < 2 {
		t.Errorf("phase %q: the sentinels failed over %d times, want 2 or more: %+v", phaseTwice, len(fs), fs)
	}
	if w.pf.QueueCount() != 0 {
		t.Errorf("postfix still holds %d messages", w.pf.QueueCount())
	}
	// DANE was on: the sender matched the MX hosts' keys to their TLSA
	// records, and never met a key without one. A Postfix that meets one
	// tries the next MX host, and if that one takes the message it logs
	// no deferral: only its "Untrusted TLS connection" line tells.
	pflog := w.pf.Log()
	verified, untrusted, failed := strings.Count(pflog, "Verified TLS connection established"),
		danePostfixUntrusted.FindAllString(pflog, -1), strings.Count(pflog, "Server certificate not verified")
	t.Logf("postfix: %d connections verified by DANE, %d not, %d deferrals for an unverified certificate", verified, len(untrusted), failed)
	if verified == 0 || len(untrusted) > 0 || failed > 0 {
		t.Errorf("postfix verified %d connections by DANE, not %d (%v), and deferred %d for an unverified certificate", verified, len(untrusted), untrusted, failed)
	}
	// Spam, and only spam, is refused at SMTP time: the sender logs
	// rspamd's reply and bounces it (to nobody: it came from <>), and
	// nothing of it reaches the list. A restarted rspamd lets none of it
	// through (mxd's default action is tempfail, not accept).
	if o.Spam["all"] == 0 || o.SpamRefused["all"] != o.Spam["all"] {
		t.Errorf("spam: %d sent, %d refused with %q and not delivered; e.g. %v", o.Spam["all"], o.SpamRefused["all"], spamRefused, o.BadSpam)
	}
	for id, ls := range w.pf.LinesByMessage(fivexx.MatchString) {
		if _, ok := spam[id]; !ok {
			t.Errorf("postfix saw a 5xx or bounced for legitimate mail %s: %v", id, ls)
		}
	}
	if rr.Faults > 0 {
		t.Errorf("phase %q: %.0f messages got the milter's default action", phaseRspamd, rr.Faults)
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
