package test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository explains itself: every document a source file or a
// document names (a path under docs/, or a Markdown file) is in the
// repository, relative to the root or to the naming file's directory.
func TestPointersResolve(t *testing.T) {
	root := ".."
	named := regexp.MustCompile(`\b(docs/[A-Za-z0-9_./-]+\.(?:md|toml|service|yml|yaml|json)|[A-Za-z0-9_./-]*[A-Za-z0-9_]\.md)\b`)
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
			for _, m := range named.FindAllString(line, -1) {
				_, errRoot := os.Stat(filepath.Join(root, m))
				_, errHere := os.Stat(filepath.Join(filepath.Dir(path), m))
				if errRoot != nil && errHere != nil {
					t.Errorf("%s:%d: %s is not in the repository", rel, i+1, m)
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
