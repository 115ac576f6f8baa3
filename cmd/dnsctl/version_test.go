package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// -version prints the version and says dnsctl reads no record.
func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-version"}, &out, &errOut); code != exitOK {
		t.Fatalf("-version: exit %d\n%s", code, errOut.String())
	}
	if s := out.String(); !strings.HasPrefix(s, "dnsctl dev\n") || !strings.Contains(s, "record formats: none") {
		t.Errorf("-version printed %q", s)
	}
}
