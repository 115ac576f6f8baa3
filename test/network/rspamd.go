package network

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mxq/internal/rspamd"
)

// rspamdPort is the milter port of each MX host's rspamd.
const rspamdPort = 11332

// Filters are the rspamds of the MX hosts, one on each, as
// docs/filtering.md deploys them. Each listens on its host's own address
// rather than on loopback (the doc's choice) only so that the test, on
// the bridge, can see it accept connections.
type Filters struct {
	wg  sync.WaitGroup
	srv []*rspamd.Server
	err []error
}

// StartFilters starts an rspamd on each host in the background: each
// compiles its list of top-level domains and its regular expressions
// first, about 25 s, so the lab starts them before its other servers
// and waits for them (Wait) only before it starts mxd. Every rspamd is
// stopped when the test ends, its log's tail kept with the lab's logs.
func StartFilters(t testing.TB, hosts []*Host) *Filters {
	f := &Filters{srv: make([]*rspamd.Server, len(hosts)), err: make([]error, len(hosts))}
	for i, h := range hosts {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			f.srv[i], f.err[i] = rspamd.StartWith(ctx, rspamd.Options{
				Bind:   h.IP + ":" + strconv.Itoa(rspamdPort),
				Prefix: []string{"ip", "netns", "exec", h.NS},
			})
			if f.err[i] != nil {
				f.err[i] = fmt.Errorf("rspamd on %s: %w (%s)", h.Name, f.err[i], rspamd.Install)
			}
		}()
	}
	t.Cleanup(func() {
		f.wg.Wait()
		for i, s := range f.srv {
			if s == nil {
				continue
			}
			os.WriteFile(filepath.Join(hosts[i].lab.Dir, hosts[i].Name+"-rspamd.log"), []byte(s.Log()), 0o644)
			s.Stop()
		}
	})
	return f
}

// Wait waits until every rspamd accepts connections, and fails the test
// if one did not start.
func (f *Filters) Wait(t testing.TB) {
	t.Helper()
	f.wg.Wait()
	for _, err := range f.err {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Milter is the milters setting of the mxd on the i-th host.
func (f *Filters) Milter(i int) string {
	return fmt.Sprintf("milters = [%q]", "inet:"+f.srv[i].Addr)
}

// RspamdRestart is what the restart of every MX host's rspamd measured.
type RspamdRestart struct {
	// Took is, per rspamd, from its SIGTERM until it accepted
	// connections again.
	Took []time.Duration
	// Replays and Faults are what the mxds counted meanwhile:
	// conversations sent again on a new connection, and messages that
	// got the milter's default action (mxd_milter_faults_total).
	Replays, Faults float64
}

// took says each rspamd's Took, by host.
func (r RspamdRestart) took() string {
	var ss []string
	for i, d := range r.Took {
		ss = append(ss, fmt.Sprintf("mx%d %s", i+1, round(d)))
	}
	return strings.Join(ss, ", ")
}

// Restart restarts every rspamd at once, as an operator's restart of
// the service does (SIGTERM: it ends its scans and exits; then started
// again with its configuration and database), and returns once all
// accept connections again.
func (f *Filters) Restart(t testing.TB) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(f.srv))
	errs := make([]error, len(f.srv))
	var wg sync.WaitGroup
	for i, s := range f.srv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			t0 := time.Now()
			errs[i] = s.Restart(ctx)
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("rspamd restart: %v", err)
		}
	}
	return took
}

// metricSum adds every sample of a metric, whatever its labels, in a
// Prometheus text exposition.
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			var v float64
			fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
			if len(fields) > 0 {
				fmt.Sscan(fields[0], &v)
			}
			sum += v
		}
	}
	return sum
}
