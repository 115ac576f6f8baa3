// Package buildinfo is the version every command of cmd/ prints with
// -version and announces (mxd's heartbeats, listd's consumer record, both
// shown by mxq stats and mxq format).
package buildinfo

import "runtime/debug"

// Version is the program's version: the commit it was built from, as go
// build stamps it from a git checkout (vcs.revision, its first 12 hex
// digits), with "+dirty" when the tree had uncommitted changes; "dev" for
// a build without that stamp (go test, go run, a tree outside git, a git
// worktree, -buildvcs=false). `go version -m BINARY` shows the stamp.
func Version() string {
	info, _ := debug.ReadBuildInfo()
	return version(info)
}

// version is Version for the build information info (nil: none).
func version(info *debug.BuildInfo) string {
	var rev string
	var dirty bool
	if info != nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
