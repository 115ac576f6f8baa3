package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/queue"
	"mxq/queue/queuetest"
)

const (
	// readerIdle is the current mxd's reader_idle, lease both listds'.
	// A listd renews its leases every lease/3, so readerIdle > lease/3
	// keeps a busy baseline listd live.
	readerIdle = 3 * time.Second
	lease      = 3 * time.Second
	// steady is how long each phase runs under load after its change.
	steady = 3 * time.Second
)

// TestRollingUpgrade runs mxd and listd of the baseline commit (which
// writes and reads record format 1 only, and dead-letters any other) and
// of the current tree against one Redis, under continuous SMTP load to
// two MX hosts, through every mix an operator meets:
//
//   - the MX hosts first, against a baseline listd: one new mxd beside an
//     old one, then both; they write format 1;
//   - a new listd beside the baseline one: still format 1; the baseline
//     listd stopped: both switch to format 2, once it has been gone for
//     reader_idle;
//   - the roll-back: each mxd back to the baseline, then the listd (once no
//     format 2 entry is queued);
//   - the rolling upgrade as documented: all old, new listd, each mxd in
//     turn, all new;
//   - a baseline listd started under new MX hosts, after mxq format pin 1
//     (and unpinned while it runs), a new listd beside it, then the
//     baseline listd stopped.
//
// Each phase must show: every message answered 250 delivered exactly once
// (by Message-ID, in the Maildir both listds deliver to), no dead letter,
// no SMTP error at all, and a format written by each current mxd that
// changes only when the last consumer that needed the old one is gone
// (or when pinned); its metrics must show no record of format 2 written
// while a baseline listd ran.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an earlier commit and runs every upgrade order under load for minutes; run make test")
	}
	root := repoRoot(t)
	commit := baselineCommit(t)
	bins := map[string]binaries{}
	built := time.Now()
	var baseErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bins["baseline"], baseErr = buildBaseline(t, root, commit)
	}()
	cur := buildCurrent(t, root)
	wg.Wait()
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	bins["current"] = cur
	t.Logf("built in %v", time.Since(built).Round(100*time.Millisecond))
	// Heartbeats and mxq stats tell an mxd of the current tree from a
	// baseline one by the version each announces.
	current, base := announced(t, cur["mxd"]), announced(t, bins["baseline"]["mxd"])
	if current == base {
		t.Fatalf("the current tree and the baseline both announce version %q", current)
	}
	t.Logf("versions: current %s, baseline %s", current, base)

	r := queuetest.StartRedis(t)
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c := newCluster(t, r.URL(), bins)
	c.mxq(t, "lists", "add", rcpt)
	rl := &roll{t: t, c: c, q: q, current: current, mx: map[string]*proc{}, mail: newMaildir(c.maildir)}
	rl.load = startLoad(3)
	rl.watch = startWatch(q, current)
	defer rl.watch.finish()
	loadDone := false
	defer func() {
		if !loadDone {
			rl.load.finish()
		}
	}()

	rl.phase("all old", nil, func() {
		rl.startListd("baseline")
		rl.startMx("mx1", "baseline")
		rl.startMx("mx2", "baseline")
	})
	rl.phase("new mxd + old listd", map[string]int{"mx1": 1}, func() { rl.rollMx("mx1", "current") })
	rl.phase("both mxd new + old listd", map[string]int{"mx1": 1, "mx2": 1}, func() {
		rl.rollMx("mx2", "current")
		rl.checkFormatCommand()
	})
	rl.phase("both listd versions, new mxd", map[string]int{"mx1": 1, "mx2": 1}, func() { rl.startListd("current") })
	rl.phase("old listd stopped (all new)", map[string]int{"mx1": 2, "mx2": 2}, func() {
		rl.stopListd("baseline")
		rl.waitWrites(map[string]int{"mx1": 2, "mx2": 2})
	})
	rl.phase("roll-back: mx2 old (both MX versions)", map[string]int{"mx1": 2}, func() { rl.rollMx("mx2", "baseline") })
	rl.phase("roll-back: mx1 old (old mxd + new listd)", nil, func() { rl.rollMx("mx1", "baseline") })
	rl.phase("roll-back: old listd (all old)", nil, func() {
		rl.waitNoFormat2()
		rl.startListd("baseline")
		rl.stopListd("current")
	})
	rl.phase("roll: new listd (old mxd + new listd)", nil, func() {
		rl.startListd("current")
		rl.stopListd("baseline")
	})
	rl.phase("roll: mx1 new (both MX versions)", map[string]int{"mx1": 2}, func() {
		rl.rollMx("mx1", "current")
		rl.waitWrites(map[string]int{"mx1": 2})
	})
	rl.phase("roll: mx2 new (all new)", map[string]int{"mx1": 2, "mx2": 2}, func() {
		rl.rollMx("mx2", "current")
		rl.waitWrites(map[string]int{"mx1": 2, "mx2": 2})
	})
	rl.phase("pinned: old listd under new mxd", map[string]int{"mx1": 1, "mx2": 1}, func() {
		c.mxq(t, "format", "pin", "1")
		rl.watch.setPinned(true)
		rl.waitWrites(map[string]int{"mx1": 1, "mx2": 1})
		rl.waitNoFormat2()
		rl.startListd("baseline")
		rl.stopListd("current")
		c.mxq(t, "format", "unpin")
		rl.watch.setPinned(false)
	})
	rl.phase("new listd beside the old one", map[string]int{"mx1": 1, "mx2": 1}, func() { rl.startListd("current") })
	rl.phase("old listd stopped again (all new)", map[string]int{"mx1": 2, "mx2": 2}, func() {
		rl.stopListd("baseline")
		rl.waitWrites(map[string]int{"mx1": 2, "mx2": 2})
	})

	rl.load.finish()
	loadDone = true
	rl.waitDelivered("the end")
	rl.report()
}

// roll is the state of the installation as the phases change it.
type roll struct {
	t     *testing.T
	c     *cluster
	q     *queue.Queue
	load  *load
	watch *watch
	mail  *maildir

	current string           // the version the current tree's programs announce
	mx      map[string]*proc // host → its running mxd
	listds  []*proc          // running, oldest first
	every   []*proc          // every listd started
	name    string           // the phase
	phaseAt time.Time
	checked int // SMTP errors reported by earlier phases
	reports []phaseReport
}

// phaseReport is what one phase measured.
type phaseReport struct {
	name             string
	sent, once, dups int
	viaBaseline      int      // accepted by a baseline mxd: format 1
	written          [3]int64 // by the current mxds, per format, in the steady window
	switches         []string
	duration         time.Duration
}

// phase runs change, then load for steady, and checks the phase:
// expect are the formats the current mxds must write in the steady
// window.
func (rl *roll) phase(name string, expect map[string]int, change func()) {
	t := rl.t
	if t.Failed() {
		return
	}
	rl.name, rl.phaseAt = name, time.Now()
	rl.load.setPhase(name)
	rl.watch.setPhase(name)
	change()
	before := rl.scrape()
	time.Sleep(steady) // the load runs meanwhile
	after := rl.scrape()
	rep := phaseReport{name: name}
	for host, a := range after {
		b := before[host]
		for f := 1; f <= 2; f++ {
			d := a[f-1] - b[f-1]
			rep.written[f] += d
			if want, ok := expect[host]; ok && f != want && d > 0 {
				t.Errorf("%s: %s wrote %d records of format %d, want only format %d", name, host, d, f, want)
			}
		}
	}
	for host, want := range expect {
		if got := rl.watch.writing()[host]; got != want {
			t.Errorf("%s: %s writes format %d, want %d", name, host, got, want)
		}
	}
	rl.checkDelivered(&rep)
	changes, _ := rl.watch.report()
	for _, c := range changes {
		switch {
		case c.phase != name:
		case c.to == 2:
			rep.switches = append(rep.switches, fmt.Sprintf("%s %d→%d %v after the last baseline listd exited", c.host, c.from, c.to, c.afterOld.Round(10*time.Millisecond)))
		default:
			rep.switches = append(rep.switches, fmt.Sprintf("%s %d→%d (pinned)", c.host, c.from, c.to))
		}
	}
	rep.duration = time.Since(rl.phaseAt)
	rl.reports = append(rl.reports, rep)
}

// checkDelivered waits until every message sent so far is in the Maildir
// and checks, for the messages of this phase, one copy each, no dead
// letter and no SMTP error.
func (rl *roll) checkDelivered(rep *phaseReport) {
	t := rl.t
	sentAll := rl.waitDelivered(rl.name)
	for id, s := range sentAll {
		if s.phase != rl.name {
			continue
		}
		rep.sent++
		switch n := rl.mail.copies[id]; {
		case n == 1:
			rep.once++
		case n > 1:
			rep.dups++
			t.Errorf("%s: %s delivered %d times", rl.name, id, n)
		}
		if s.version == "baseline" {
			rep.viaBaseline++
		}
	}
	if rep.sent == 0 {
		t.Errorf("%s: no message sent", rl.name)
	}
	st, err := rl.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 0 || len(st.Left) != 0 {
		t.Errorf("%s: %d dead letters, %d entries left", rl.name, st.Dead, len(st.Left))
	}
	// A baseline listd fails its whole fetch on a format 2 body (GET of
	// a list) and leaves what it read pending until another consumer
	// takes it over; any other listd trouble is a failure too.
	for _, p := range rl.every {
		log := p.log.String()
		for _, bad := range []string{"fetch from the queue failed", "outcome=dead", "outcome=unsettled", "outcome=left", "level=ERROR"} {
			if n := strings.Count(log, bad); n > 0 {
				t.Errorf("%s: %s logged %q %d times", rl.name, p.name, bad, n)
			}
		}
	}
	_, errs := rl.load.snapshot()
	for _, e := range errs[rl.checked:] {
		t.Errorf("SMTP: %s", e)
	}
	rl.checked = len(errs)
	_, problems := rl.watch.report()
	for _, p := range problems {
		t.Errorf("format: %s", p)
	}
	if len(problems) > 0 {
		rl.t.FailNow()
	}
}

// waitDelivered waits until every message sent so far has a copy in the
// Maildir, and returns them.
func (rl *roll) waitDelivered(what string) map[string]sent {
	t := rl.t
	sentAll, _ := rl.load.snapshot()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := rl.mail.scan(); err != nil {
			t.Fatal(err)
		}
		missing := 0
		for id := range sentAll {
			if rl.mail.copies[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return sentAll
		}
		if time.Now().After(deadline) {
			st, _ := rl.q.Stats(context.Background())
			t.Fatalf("%s: %d of %d messages not delivered within 60s; queue %+v", what, missing, len(sentAll), st)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// startMx starts host's mxd of version and puts it into the targets.
func (rl *roll) startMx(host, version string) {
	p := rl.c.startMxd(rl.t, host, version)
	rl.watch.started(host, version == "current")
	rl.mx[host] = p
	rl.load.add(host, p.addr, version)
}

// rollMx replaces host's mxd by one of version: out of the targets, the
// sessions it has finish, stop, start, back in.
func (rl *roll) rollMx(host, version string) {
	rl.load.remove(host)
	rl.watch.started(host, false)
	rl.mx[host].stop(rl.t)
	rl.startMx(host, version)
}

// startListd starts a listd of version beside the running ones.
func (rl *roll) startListd(version string) {
	if version == "baseline" {
		rl.watch.setOldLive(true)
	}
	p := rl.c.startListd(rl.t, version)
	rl.listds = append(rl.listds, p)
	rl.every = append(rl.every, p)
}

// stopListd stops the running listd of version.
func (rl *roll) stopListd(version string) {
	for i, p := range rl.listds {
		if p.version != version {
			continue
		}
		p.stop(rl.t)
		rl.listds = slices.Delete(rl.listds, i, i+1)
		if version == "baseline" {
			rl.watch.setOldLive(false)
		}
		return
	}
	rl.t.Fatalf("no %s listd running", version)
}

// waitWrites waits until the current mxds write the formats of want.
func (rl *roll) waitWrites(want map[string]int) {
	deadline := time.Now().Add(4*readerIdle + 10*time.Second)
	for {
		got := rl.watch.writing()
		ok := true
		for h, v := range want {
			ok = ok && got[h] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			rl.t.Fatalf("%s: mxds write %v, want %v", rl.name, got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// waitNoFormat2 waits, with mxq format as an operator would, until no
// queued message is in format 2: a baseline listd would dead-letter it.
func (rl *roll) waitNoFormat2() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var res struct {
			Queued map[string]int64 `json:"queued"`
		}
		if err := json.Unmarshal([]byte(rl.c.mxq(rl.t, "format", "-json")), &res); err != nil {
			rl.t.Fatal(err)
		}
		if res.Queued["2"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			rl.t.Fatalf("%s: %d messages of format 2 still queued after 30s", rl.name, res.Queued["2"])
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// checkFormatCommand checks what mxq format and mxq stats say while
// current mxds run beside a baseline listd.
func (rl *roll) checkFormatCommand() {
	out := rl.c.mxq(rl.t, "format")
	for _, want := range []string{"writes now: 1", "announces nothing", "mx1", "mx2"} {
		if !strings.Contains(out, want) {
			rl.t.Errorf("mxq format lacks %q:\n%s", want, out)
		}
	}
	rl.t.Logf("mxq format, new MX hosts and a baseline listd:\n%s", out)
	out = rl.c.mxq(rl.t, "stats")
	if !regexp.MustCompile(`mx1\s.*` + regexp.QuoteMeta(rl.current) + `\s+1, 2\s+1\b`).MatchString(out) {
		rl.t.Errorf("mxq stats does not show mx1 writing format 1:\n%s", out)
	}
	rl.t.Logf("mxq stats:\n%s", out)
}

var writtenLine = regexp.MustCompile(`(?m)^mxd_queue_records_written_total\{format="(\d)"\} (\d+)`)

// scrape reads the records written per format by each current mxd.
func (rl *roll) scrape() map[string][2]int64 {
	out := map[string][2]int64{}
	for host, p := range rl.mx {
		if p.metrics == "" {
			continue
		}
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			rl.t.Fatalf("metrics of %s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v [2]int64
		for _, m := range writtenLine.FindAllStringSubmatch(string(b), -1) {
			f, _ := strconv.Atoi(m[1])
			n, _ := strconv.ParseInt(m[2], 10, 64)
			if f >= 1 && f <= 2 {
				v[f-1] = n
			}
		}
		out[host] = v
	}
	return out
}

// report logs what each phase measured.
func (rl *roll) report() {
	var b strings.Builder
	fmt.Fprintf(&b, "%-42s %6s %6s %5s %9s %9s %9s %7s  %s\n", "phase", "sent", "once", "dups", "via base", "new f1", "new f2", "time", "format changes")
	total := 0
	for _, r := range rl.reports {
		total += r.sent
		fmt.Fprintf(&b, "%-42s %6d %6d %5d %9d %9d %9d %7s  %s\n", r.name, r.sent, r.once, r.dups, r.viaBaseline,
			r.written[1], r.written[2], r.duration.Round(100*time.Millisecond), strings.Join(r.switches, "; "))
	}
	fmt.Fprintf(&b, "%d messages; via base: accepted by a baseline mxd (format 1); new f1/f2: records the current mxds wrote in format 1/2 during each phase's steady %v\n", total, steady)
	for _, p := range rl.every {
		fmt.Fprintf(&b, "%s delivered %d\n", p.name, strings.Count(p.log.String(), "outcome=delivered"))
	}
	rl.t.Logf("rolling upgrade, reader_idle %v, lease %v:\n%s", readerIdle, lease, b.String())
}
