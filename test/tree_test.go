package test

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxTracked is the largest file git may track outside a testdata/
// directory.
const maxTracked = 1 << 20

// The repository holds source, not what is built from it: no tracked file
// is an executable program (ELF, Mach-O or PE; `make build` puts them in
// bin/, which git ignores), and none outside a testdata/ directory is over
// 1 MiB. `make test` runs this first.
func TestTrackedFiles(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v (this test reads the files git tracks: run it in a git clone)", err)
	}
	root := strings.TrimSpace(string(top))
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var bad []string
	checked := 0
	for _, name := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		st, err := os.Lstat(filepath.Join(root, name))
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, a symbolic link, a submodule
		}
		checked++
		if kind := executable(filepath.Join(root, name)); kind != "" {
			bad = append(bad, fmt.Sprintf("%s: %s binary, %d bytes", name, kind, st.Size()))
			continue
		}
		if st.Size() > maxTracked && !slices.Contains(strings.Split(name, "/"), "testdata") {
			bad = append(bad, fmt.Sprintf("%s: %d bytes, over 1 MiB outside testdata/", name, st.Size()))
		}
	}
	if checked < 50 {
		t.Fatalf("git ls-files listed only %d files in %s", checked, root)
	}
	if len(bad) > 0 {
		t.Fatalf("files that git must not track:\n  %s\n"+
			"Programs are built into bin/ (make build), which git ignores: take them out of the index with\n"+
			"  git rm --cached FILE...\n"+
			"and add them to .gitignore. Large data a test needs goes in the package's testdata/ directory.",
			strings.Join(bad, "\n  "))
	}
}

// executable names the format of the program (or object, or library) in
// the file at path: ELF by its magic number, Mach-O and PE as debug/macho
// and debug/pe read them. It returns "" for any other file.
func executable(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n < len(magic) {
		return ""
	}
	switch {
	case bytes.Equal(magic[:], []byte(elf.ELFMAG)):
		return "ELF" // even one too damaged for debug/elf is no source
	case magic[0] == 'M' && magic[1] == 'Z':
		if _, err := pe.NewFile(f); err == nil {
			return "PE"
		}
	default:
		if _, err := macho.NewFile(f); err == nil {
			return "Mach-O"
		}
		if _, err := macho.NewFatFile(f); err == nil {
			return "Mach-O universal"
		}
	}
	return ""
}

// No tracked file matches .gitignore: a pattern that matches one (a
// binary's name that is also a package directory, as /dnsctl was) makes
// git leave out every new file beside it, and a clean clone then lacks
// what the author's tree built with.
func TestNothingTrackedIgnored(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v (this test reads the files git tracks: run it in a git clone)", err)
	}
	cmd := exec.Command("git", "ls-files", "--cached", "--ignored", "--exclude-standard")
	cmd.Dir = strings.TrimSpace(string(top))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files --ignored: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("tracked files that .gitignore matches (new files beside them would be left out of commits): fix the pattern in .gitignore, e.g. anchor it to a file:\n  %s",
			strings.ReplaceAll(s, "\n", "\n  "))
	}
}
