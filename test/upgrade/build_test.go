package upgrade

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// programs are the commands the test runs at both versions; the current
// tree's mxq is built too, to look at the queue the way an operator does.
var programs = []string{"mxd", "listd"}

// binaries are the programs of one version, by name.
type binaries map[string]string

// baselineCommit reads the commit named in the file baseline.
func baselineCommit(t *testing.T) string {
	t.Helper()
	f, err := os.Open("baseline")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if line := strings.TrimSpace(s.Text()); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	t.Fatal("the file baseline names no commit")
	return ""
}

// repoRoot is the top of the git work tree holding this test.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v (the upgrade test builds from this repository's history: run it in a git clone)", err)
	}
	return strings.TrimSpace(string(out))
}

// buildBaseline builds the programs at commit, from `git archive` of
// this repository, with the module proxy for their dependencies. The
// binaries are kept under the user's cache directory, keyed by commit and
// Go version, so that later runs skip the build. It returns its failure
// rather than ending the test, so that it may run on a goroutine of its
// own.
func buildBaseline(t *testing.T, root, commit string) (binaries, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	dir := filepath.Join(cache, "mxq-upgrade-test", commit+"-"+runtime.Version())
	if bins, ok := existing(dir); ok {
		t.Logf("baseline %.7s: binaries cached in %s", commit, dir)
		return bins, nil
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		return nil, fmt.Errorf("commit %s is not in this clone (a shallow clone?): run git fetch --unshallow", commit)
	}
	src := t.TempDir()
	if err := extract(root, commit, src); err != nil {
		return nil, fmt.Errorf("git archive %s: %v", commit, err)
	}
	tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
	os.RemoveAll(tmp)
	defer os.RemoveAll(tmp)
	// The baseline's commands take their version from -X main.version.
	if err := goBuild(src, tmp, "-X main.version="+commit[:7], "-mod=mod"); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	bins, _ := existing(dir)
	return bins, nil
}

// buildCurrent builds the programs and mxq from the current tree. Their
// version is the commit go build stamps, or "dev" without a stamp (a git
// worktree, -buildvcs=false): see announced.
func buildCurrent(t *testing.T, root string) binaries {
	t.Helper()
	dir := t.TempDir()
	if err := goBuild(root, dir, "", "", append([]string{"mxq"}, programs...)...); err != nil {
		t.Fatal(err)
	}
	bins, _ := existing(dir)
	bins["mxq"] = filepath.Join(dir, "mxq")
	return bins
}

// goBuild builds ./cmd/NAME of the module in src for each name (programs
// by default) into out, with ldflags.
func goBuild(src, out, ldflags, goflags string, names ...string) error {
	if len(names) == 0 {
		names = programs
	}
	args := []string{"build", "-ldflags", ldflags, "-o", out + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" "+goflags))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", src, err, b)
	}
	return nil
}

// announced is the version bin says it is (`bin -version`), the one its
// heartbeats and mxq stats show.
func announced(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("%s -version: %v", bin, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("%s -version printed %q, want NAME VERSION on its first line", bin, out)
	}
	return f[1]
}

// existing returns the programs in dir, if all are there.
func existing(dir string) (binaries, bool) {
	bins := binaries{}
	for _, p := range programs {
		path := filepath.Join(dir, p)
		if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
			return nil, false
		}
		bins[p] = path
	}
	return bins, true
}

// extract writes the tree of commit into dir.
func extract(root, commit, dir string) error {
	cmd := exec.Command("git", "-C", root, "archive", "--format=tar", commit)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	err = untar(out, dir)
	io.Copy(io.Discard, out)
	if werr := cmd.Wait(); werr != nil {
		return fmt.Errorf("%v: %s", werr, stderr.String())
	}
	return err
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == ".." || strings.HasPrefix(name, "../") || filepath.IsAbs(name) {
			return fmt.Errorf("archive entry %q outside the tree", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		}
	}
}
