package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlagsModes(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		targets []string
		load    loadArgs
		warmup  int
		mixed   bool
		big     loadArgs
	}{
		{args: nil, targets: []string{"smtp-sink", "postfix", "mxd"},
			load: loadArgs{n: 10000, c: 50, size: 10240, duration: 90 * time.Second}, warmup: 500},
		{args: []string{"-mode", "big"}, targets: []string{"postfix", "mxd"},
			load: loadArgs{n: 300, c: 100, size: 8000000, duration: 5 * time.Minute}, warmup: 8},
		// Flags given win over the preset, wherever they are.
		{args: []string{"-n", "30", "-mode", "big", "-c", "10", "-warmup", "0"}, targets: []string{"postfix", "mxd"},
			load: loadArgs{n: 30, c: 10, size: 8000000, duration: 5 * time.Minute}, warmup: 0},
		{args: []string{"-mode", "mixed"}, targets: []string{"mxd"}, mixed: true,
			load: loadArgs{n: 5000, c: 10, size: 10240, duration: 2 * time.Minute}, warmup: 500,
			big: loadArgs{n: 2000, c: 30, size: 8000000, duration: 2*time.Minute + 5*time.Second}},
		{args: []string{"-mode", "burst"}, targets: []string{"mxd"},
			load: loadArgs{n: 200, c: 200, size: 16000000, duration: 5 * time.Minute}, warmup: 0},
		{args: []string{"-mode", "tls"},
			targets: []string{"smtp-sink", "postfix-rsa", "postfix-ecdsa", "mxd-rsa", "mxd-ecdsa", "mxd-rsa-resume", "mxd-ecdsa-resume"},
			load:    loadArgs{n: 3000, c: 50, size: 10240, perConn: 1, duration: time.Minute, source: "127.0.0.2-127.0.0.201"}, warmup: 200},
		{args: []string{"-mode", "hold"}, targets: []string{"mxd"},
			load: loadArgs{n: 300, c: 1, size: 10240, duration: 5 * time.Minute, source: "127.0.0.2",
				hold: holdArgs{n: 2400, kind: "header", source: "127.0.1.1-127.0.1.120", lead: 10 * time.Second}}, warmup: 20},
		{args: []string{"-mode", "hold-trickle", "-hold", "100"}, targets: []string{"mxd"},
			load: loadArgs{n: 300, c: 1, size: 10240, duration: 5 * time.Minute, source: "127.0.0.2",
				hold: holdArgs{n: 100, kind: "trickle", source: "127.0.1.1-127.0.1.220", lead: 10 * time.Second}}, warmup: 20},
		// -replicas adds mxd with replicas to the default targets.
		{args: []string{"-replicas", "1"}, targets: []string{"smtp-sink", "postfix", "mxd", "mxd-replicas"},
			load: loadArgs{n: 10000, c: 50, size: 10240, duration: 90 * time.Second}, warmup: 500},
		{args: []string{"-mxd-ref", "HEAD~1"}, targets: []string{"smtp-sink", "postfix", "mxd", "mxd-ref"},
			load: loadArgs{n: 10000, c: 50, size: 10240, duration: 90 * time.Second}, warmup: 500},
		{args: []string{"-replicas", "1", "-targets", "mxd,mxd-replicas"}, targets: []string{"mxd", "mxd-replicas"},
			load: loadArgs{n: 10000, c: 50, size: 10240, duration: 90 * time.Second}, warmup: 500},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.targets, o.targets); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.load, o.load, cmp.AllowUnexported(loadArgs{}, holdArgs{})); diff != "" {
				t.Errorf("load (-want +got):\n%s", diff)
			}
			if o.warmup != tc.warmup || o.mixed != tc.mixed {
				t.Errorf("warmup %d, mixed %v; want %d, %v", o.warmup, o.mixed, tc.warmup, tc.mixed)
			}
			if tc.mixed {
				if diff := cmp.Diff(tc.big, o.big, cmp.AllowUnexported(loadArgs{}, holdArgs{})); diff != "" {
					t.Errorf("big load (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "huge"},
		{"-mxd-budget", "lots"},
		{"-mxd-budget", "-5MiB"},
		{"-mixed", "-big-c", "0"},
		{"-targets", "mxd,exim"},
		{"-targets", "mxd-dsa"},
		{"-targets", "mxd-replicas"}, // without -replicas
		{"-replicas", "-1"},
		{"-replicas", "1", "-replica-fsync", "no"},
		{"-targets", "mxd-ref"}, // without -mxd-ref
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error, want one", args)
		}
	}
}

func TestMxdConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    options
		want []string
	}{
		{"defaults", options{load: loadArgs{size: 10240}}, nil},
		{"budget", options{load: loadArgs{size: 10240}, budget: 256 << 20},
			[]string{"memory_budget = 268435456"}},
		{"set wins", options{load: loadArgs{size: 10240}, budget: 1, mxdSet: stringsFlag{"memory_budget=5"}},
			[]string{"memory_budget=5"}},
		{"bigger than mxd's default", options{load: loadArgs{size: 40 << 20}},
			[]string{"max_message_bytes = 41943040"}},
		{"mixed", options{mixed: true, load: loadArgs{size: 10240}, big: loadArgs{size: 33 << 20}},
			[]string{"max_message_bytes = 34603008"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.o.mxdConfig()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedisMaxmemory(t *testing.T) {
	small := options{load: loadArgs{n: 10000, size: 10240}}
	if got := redisMaxmemory(small); got != 4<<30 {
		t.Errorf("10 KiB load: maxmemory %d, want 4 GiB", got)
	}
	huge := options{load: loadArgs{n: 1 << 20, size: 1 << 30}}
	if got := redisMaxmemory(huge); got < 4<<30 || got >= 1<<50 {
		t.Errorf("huge load: maxmemory %d, want at least 4 GiB and at most half the machine", got)
	}
}

func TestStatusKiB(t *testing.T) {
	status := []byte("Name:\tmxd\nVmPeak:\t 1300000 kB\nVmHWM:\t  218000 kB\nVmRSS:\t   90000 kB\n")
	for _, tc := range []struct {
		field string
		want  int64
	}{{"VmHWM", 218000}, {"VmRSS", 90000}} {
		got, err := statusKiB(status, tc.field)
		if err != nil || got != tc.want {
			t.Errorf("%s = %d, %v; want %d", tc.field, got, err, tc.want)
		}
	}
	if _, err := statusKiB(status, "VmSwap"); err == nil {
		t.Error("VmSwap: no error for a missing field")
	}
	if _, err := statusKiB([]byte("VmHWM: lots\n"), "VmHWM"); err == nil {
		t.Error("VmHWM: lots: no error")
	}
}

func TestPeakRSSOfSelf(t *testing.T) {
	// The test runs as any user: reading and resetting its own VmHWM is
	// always allowed.
	pid := os.Getpid()
	if err := resetPeakRSS(pid); err != nil {
		t.Fatal(err)
	}
	kib, err := peakRSS(pid)
	if err != nil || kib <= 0 {
		t.Errorf("peakRSS = %d, %v; want a positive size", kib, err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"268435456": 268435456, "256MiB": 256 << 20, "2GiB": 2 << 30, "512KiB": 512 << 10,
		"8MB": 8000000, "10kB": 10000, "1 GB": 1e9, "0": 0, "100B": 100,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GiB", "-1", "12 parsecs", "99999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got, want := mb(9_100_000_000), "9,100 MB"; got != want {
		t.Errorf("mb = %q, want %q", got, want)
	}
}

func TestAutoWarmup(t *testing.T) {
	for size, want := range map[int]int{10240: 500, 8000000: 8, 16000000: 4, 100 << 20: 1} {
		if got := autoWarmup(size); got != want {
			t.Errorf("autoWarmup(%d) = %d, want %d", size, got, want)
		}
	}
}

func TestOutcomes(t *testing.T) {
	temp, perm, errs := outcomes(map[string]int{
		"data-end 250": 78, "data-end 451": 222, "greeting 421": 3, "rcpt 550": 2, "data-end 552": 1,
		"error timeout": 4, "error eof": 1,
	})
	if temp != 225 || perm != 3 || errs != 5 {
		t.Errorf("outcomes = %d 4xx, %d 5xx, %d errors; want 225, 3, 5", temp, perm, errs)
	}
}

func TestReportBigLoad(t *testing.T) {
	r := report{Size: 8000000, Load: "300 messages of 8000000 bytes", Rounds: 3, Results: map[string][]loadResult{
		"postfix": {{Rate: 12}, {Rate: 11}, {Rate: 13}},
		"mxd": {
			{Rate: 3, Codes: map[string]int{"data-end 250": 78, "data-end 451": 222}, PeakKiB: 800_000, InFlight: 800_000_000},
			{Rate: 4, Codes: map[string]int{"data-end 250": 100, "data-end 451": 200}, PeakKiB: 1_000_000, InFlight: 800_000_000},
			{Rate: 2, PeakKiB: 900_000, InFlight: 800_000_000},
		},
	}, Checks: []string{"mxd: 88 messages answered 250, 176 queued (MISMATCH)"}}
	r.summarize([]string{"postfix", "mxd"})
	out := printed(&r)
	reportHas(t, out,
		// The median round by rate is the first: 3 msgs/s, 222 4xx.
		"mxd                3",
		"   222     0  data-end 250: 78, data-end 451: 222",
		"mxd peak RSS (VmHWM) 819 MB for 800 MB in flight: 1.02× (median round); rounds 819 1,024 922 MB",
		"mxd / postfix      0.25  (msgs/s, median rounds; target ≥ 1.5)",
		"check: mxd: 88 messages answered 250, 176 queued (MISMATCH)",
	)
}
