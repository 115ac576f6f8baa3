package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// statusKiB returns a "Name:   1234 kB" field of /proc/PID/status.
func statusKiB(status []byte, name string) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != name {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected value %q", name, v)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in the status", name)
}

// peakRSS is the process's peak resident set size (VmHWM) in KiB, since it
// started or since resetPeakRSS.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKiB(b, "VmHWM")
}

// resetPeakRSS sets the process's VmHWM to its current RSS (proc(5),
// /proc/PID/clear_refs: "5"), so that each load run reports its own peak.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// parseSize reads a byte count: 268435456, 256MiB, 8MB, 2GiB, 512KiB, 10kB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KiB, MiB, GiB, kB, MB or GB", s)
	}
	return n * mult, nil
}

// mb formats bytes in decimal megabytes, as message sizes are given.
func mb(bytes int64) string {
	return fmt.Sprintf("%s MB", thousands(int64(float64(bytes)/1e6+0.5)))
}

// thousands formats n with commas: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
