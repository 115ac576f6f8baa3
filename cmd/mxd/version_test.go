package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// -version prints the version and the record formats read and written.
func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out, &errOut); err != nil {
		t.Fatalf("-version: %v\n%s", err, errOut.String())
	}
	if s := out.String(); !strings.HasPrefix(s, "mxd dev\n") || !strings.Contains(s, "record formats: reads 1, 2; writes ") {
		t.Errorf("-version printed %q", s)
	}
}
