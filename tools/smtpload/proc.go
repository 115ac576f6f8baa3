package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. It is 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need
// cgo for the same answer).
const clockTicks = 100

// A procStat is the part of /proc/PID/stat the tool needs (proc(5)).
type procStat struct {
	pid, ppid int
	comm      string
	// CPU time in clock ticks: own user and system time, and that of
	// children this process has waited for.
	utime, stime, cutime, cstime uint64
}

// total is the CPU time of the process and its reaped children.
func (p procStat) total() uint64 { return p.utime + p.stime + p.cutime + p.cstime }

// parseStat parses one /proc/PID/stat line. comm can contain spaces and
// parentheses, so the fields are found after the last ')'.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	var p procStat
	var err error
	if p.pid, err = strconv.Atoi(string(bytes.TrimSpace(b[:open]))); err != nil {
		return procStat{}, fmt.Errorf("malformed stat pid: %w", err)
	}
	p.comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("malformed stat: %d fields", len(f)+2)
	}
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("malformed stat ppid: %w", err)
	}
	for i, dst := range []*uint64{&p.utime, &p.stime, &p.cutime, &p.cstime} {
		v, err := strconv.ParseUint(f[11+i], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("malformed stat field %d: %w", 14+i, err)
		}
		*dst = v
	}
	return p, nil
}

// snapshot reads every process's stat. Processes that exit while it reads
// are skipped.
func snapshot() (map[int]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procStat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		p, err := parseStat(b)
		if err != nil || p.pid != pid {
			continue
		}
		procs[pid] = p
	}
	return procs, nil
}

// A procSel selects processes: with only pid, that process and all of its
// descendants; with only name, every process whose name (comm) is name;
// with both, the processes called name among pid's descendants.
type procSel struct {
	pid  int
	name string
}

func (s procSel) String() string {
	switch {
	case s.name != "" && s.pid != 0:
		return s.name + "@" + strconv.Itoa(s.pid)
	case s.name != "":
		return s.name
	}
	return strconv.Itoa(s.pid)
}

// parseProcSels parses a comma list of "123", "redis-server" (a name) and
// "smtpd@123" (a name under a parent).
func parseProcSels(v string) ([]procSel, error) {
	var sels []procSel
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var s procSel
		name, parent, under := strings.Cut(f, "@")
		if under {
			pid, err := strconv.Atoi(parent)
			if err != nil || pid <= 0 || name == "" {
				return nil, fmt.Errorf("bad process %q: want NAME@PID", f)
			}
			s = procSel{pid: pid, name: name}
		} else if pid, err := strconv.Atoi(f); err == nil {
			if pid <= 0 {
				return nil, fmt.Errorf("bad pid %d", pid)
			}
			s = procSel{pid: pid}
		} else {
			s = procSel{name: f}
		}
		if len(s.name) > 15 {
			// The kernel cuts comm to 15 bytes.
			s.name = s.name[:15]
		}
		sels = append(sels, s)
	}
	return sels, nil
}

// members returns the pids s selects in procs.
func (s procSel) members(procs map[int]procStat) []int {
	var out []int
	if s.pid == 0 {
		for pid, p := range procs {
			if p.comm == s.name {
				out = append(out, pid)
			}
		}
		return out
	}
	if _, ok := procs[s.pid]; !ok {
		return nil
	}
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	queue := []int{s.pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if s.name == "" || procs[pid].comm == s.name {
			out = append(out, pid)
		}
		queue = append(queue, children[pid]...)
	}
	return out
}

// cpuTicks is the CPU time, in clock ticks, of the processes s selects,
// split by process name. Children that were reaped count under the parent
// that reaped them: a short-lived Postfix smtpd shows up as "master" time.
func (s procSel) cpuTicks(procs map[int]procStat) (total uint64, byName map[string]uint64) {
	byName = map[string]uint64{}
	for _, pid := range s.members(procs) {
		p := procs[pid]
		total += p.total()
		byName[p.comm] += p.total()
	}
	return total, byName
}

// A cpuUse is the CPU time one selection consumed between two snapshots.
type cpuUse struct {
	Sel     string             `json:"sel"`
	Seconds float64            `json:"seconds"`
	Per10k  float64            `json:"seconds_per_10k"`
	ByName  map[string]float64 `json:"by_name"`
	Missing bool               `json:"missing,omitempty"` // nothing matched at the end
}

// cpuBetween computes each selection's CPU use from before to after,
// normalised per 10,000 messages. A process alive in both snapshots adds its
// difference; one that started in between adds all of its time; one that
// exited in between was reaped by a parent whose cutime/cstime grew by its
// whole time, so only the part it had at the start is subtracted again.
func cpuBetween(sels []procSel, before, after map[int]procStat, msgs int) []cpuUse {
	var out []cpuUse
	for _, s := range sels {
		t0, n0 := s.cpuTicks(before)
		t1, n1 := s.cpuTicks(after)
		u := cpuUse{Sel: s.String(), ByName: map[string]float64{}}
		u.Missing = len(s.members(after)) == 0
		if t1 > t0 {
			u.Seconds = float64(t1-t0) / clockTicks
		}
		for name, v := range n1 {
			if d := float64(v) - float64(n0[name]); d > 0 {
				u.ByName[name] = d / clockTicks
			}
		}
		if msgs > 0 {
			u.Per10k = u.Seconds * 10000 / float64(msgs)
		}
		out = append(out, u)
	}
	return out
}

// rssKiB is the resident set size (VmRSS) of the processes s selects, in
// KiB.
func (s procSel) rssKiB(procs map[int]procStat) (int64, error) {
	pids := s.members(procs)
	if len(pids) == 0 {
		return 0, fmt.Errorf("no process %s", s)
	}
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		kib, err := parseVmRSS(b)
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		sum += kib
	}
	return sum, nil
}

// parseVmRSS finds "VmRSS:  1234 kB" in /proc/PID/status.
func parseVmRSS(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, fmt.Errorf("no VmRSS")
}
