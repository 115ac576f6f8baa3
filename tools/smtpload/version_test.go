package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// -version prints the version and says smtpload reads no record.
func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out, &errOut); err != nil {
		t.Fatalf("-version: %v\n%s", err, errOut.String())
	}
	if s := out.String(); !strings.HasPrefix(s, "smtpload dev\n") || !strings.Contains(s, "record formats: none") {
		t.Errorf("-version printed %q", s)
	}
}
