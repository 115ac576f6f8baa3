package lists_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"mxq/lists"
	"mxq/lists/liststest"
)

func TestDovecotLMTP(t *testing.T) {
	dv := liststest.StartDovecot(t, "dev@lists.example.org", "announce@lists.example.org")
	e := newEnv(t)
	r := &lists.Router{Routes: []lists.Route{{Match: "*@lists.example.org", To: &lists.LMTP{Addr: dv.Socket()}}}}
	e.run(t, fastRetries, r)
	id1 := e.put(t, "alice@example.com", "dev@lists.example.org", "announce@lists.example.org")
	id2 := e.put(t, "bob@example.com", "dev@lists.example.org", "nosuchuser@lists.example.org")
	waitFor(t, "delivery", e.drained(t))

	got := dv.MessageIDs("dev@lists.example.org")
	want := []string{"<" + id1 + "@example.com>", "<" + id2 + "@example.com>"}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dev's INBOX: %v, want %v", got, want)
	}
	if got := dv.MessageIDs("announce@lists.example.org"); len(got) != 1 || got[0] != "<"+id1+"@example.com>" {
		t.Errorf("announce's INBOX: %v, want only %s", got, id1)
	}
	// Dovecot rejects the unknown user with 550 5.1.1 at RCPT: that
	// recipient alone is dead-lettered.
	dl, err := e.q.DeadLetter(context.Background(), id2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dl.Rejected["nosuchuser@lists.example.org"]; !ok || len(dl.Delivered) != 1 {
		t.Errorf("dead letter %+v: want nosuchuser rejected, dev delivered", dl)
	}
}
