package test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository explains itself: no source file or document points to a
// document that is not in it, and every path it names under docs/ (or a
// top-level document) exists.
func TestPointersResolve(t *testing.T) {
	root := ".."
	outside := regexp.MustCompile(`(?i)DESIGN\.md|design notes?\b|design table|\.\./shared|as the issue|the issue asks`)
	named := regexp.MustCompile(`\b(docs/[A-Za-z0-9_./-]+\.(?:md|toml|service|yml|yaml|json)|ARCHITECTURE\.md|README\.md|CHANGELOG\.md)\b`)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case ".git", "third_party", "bin", "run":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, ".md") && !strings.HasSuffix(path, ".toml") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if rel == filepath.Join("test", "pointers_test.go") {
				break
			}
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: %q points outside the repository", rel, i+1, m)
			}
			for _, m := range named.FindAllString(line, -1) {
				if _, err := os.Stat(filepath.Join(root, m)); err != nil {
					t.Errorf("%s:%d: %s does not exist", rel, i+1, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: wrong root?", checked)
	}
}
