package buildinfo

import (
	"runtime/debug"
	"testing"
)

// The version is the stamped commit, short, marked when the tree had
// changes; "dev" without a stamp.
func TestVersion(t *testing.T) {
	stamp := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	const rev = "02ce5e4f2c0d58bb8297cfef04e4b4ecb542b736"
	for _, tt := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "dev"},
		{"no stamp (go test, -buildvcs=false)", stamp("-compiler", "gc"), "dev"},
		{"clean", stamp("vcs", "git", "vcs.revision", rev, "vcs.modified", "false"), "02ce5e4f2c0d"},
		{"dirty", stamp("vcs.modified", "true", "vcs.revision", rev), "02ce5e4f2c0d+dirty"},
	} {
		if got := version(tt.info); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := Version(); got != "dev" {
		t.Errorf("a test binary, which go test never stamps: Version() = %q, want dev", got)
	}
}
