package main

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses; fields count from the last ')'.
	line := "4242 (smtpd (x) y) S 17 4242 4242 0 -1 4194560 200 0 0 0 31 12 5 3 20 0 1 0 12345 1000 100 18446744073709551615\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, ppid: 17, comm: "smtpd (x) y", utime: 31, stime: 12, cutime: 5, cstime: 3}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procStat{})); diff != "" {
		t.Errorf("parseStat (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseStatSelf(t *testing.T) {
	procs, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	self, ok := procs[os.Getpid()]
	if !ok {
		t.Fatal("own pid not in the snapshot")
	}
	if self.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", self.ppid, os.Getppid())
	}
	rss, err := procSel{pid: os.Getpid()}.rssKiB(procs)
	if err != nil || rss <= 0 {
		t.Errorf("own RSS = %d, %v; want > 0", rss, err)
	}
}

func TestCPUBetween(t *testing.T) {
	// master (1) with children smtpd (2, exits and is reaped) and cleanup
	// (3, alive throughout); smtpd (4) starts during the run; redis (9)
	// is unrelated.
	before := map[int]procStat{
		1: {pid: 1, comm: "master", utime: 10},
		2: {pid: 2, ppid: 1, comm: "smtpd", utime: 50, stime: 20},
		3: {pid: 3, ppid: 1, comm: "cleanup", utime: 30},
		9: {pid: 9, comm: "redis-server", utime: 1000},
	}
	after := map[int]procStat{
		// pid 2 reached 100+40 ticks before it exited; master reaped it.
		1: {pid: 1, comm: "master", utime: 12, cutime: 100, cstime: 40},
		3: {pid: 3, ppid: 1, comm: "cleanup", utime: 80},
		4: {pid: 4, ppid: 1, comm: "smtpd", utime: 25, stime: 5},
		9: {pid: 9, comm: "redis-server", utime: 1100},
	}
	sels := []procSel{{pid: 1}, {name: "redis-server"}, {pid: 1, name: "cleanup"}}
	got := cpuBetween(sels, before, after, 5000)
	// master +2, reaped smtpd +140-70, cleanup +50, new smtpd +30 = 152 ticks.
	want := []cpuUse{
		{Sel: "1", Seconds: 1.52, Per10k: 3.04, ByName: map[string]float64{"master": 1.42, "cleanup": 0.5}},
		{Sel: "redis-server", Seconds: 1, Per10k: 2, ByName: map[string]float64{"redis-server": 1}},
		{Sel: "cleanup@1", Seconds: 0.5, Per10k: 1, ByName: map[string]float64{"cleanup": 0.5}},
	}
	// By name, the reaped smtpd's time counts under master, and smtpd
	// went from 70 (pid 2) to 30 (pid 4): no growth shown.
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("cpuBetween (-want +got):\n%s", diff)
	}
}

func TestParseProcSels(t *testing.T) {
	got, err := parseProcSels("12, redis-server,a-very-long-process-name,smtpd@34")
	if err != nil {
		t.Fatal(err)
	}
	want := []procSel{{pid: 12}, {name: "redis-server"}, {name: "a-very-long-pro"}, {pid: 34, name: "smtpd"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procSel{})); diff != "" {
		t.Errorf("parseProcSels (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"-3", "smtpd@", "@12", "smtpd@x"} {
		if _, err := parseProcSels(bad); err == nil {
			t.Errorf("parseProcSels(%q): no error", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   1234 kB\nThreads: 1\n"))
	if err != nil || got != 1234 {
		t.Errorf("parseVmRSS = %d, %v; want 1234", got, err)
	}
}
