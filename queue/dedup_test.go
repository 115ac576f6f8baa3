package queue_test

import (
	"testing"

	"mxq/queue"
)

// The dedup key folds addresses as the registry does (address.Fold): the
// case of ASCII letters does not matter, every other byte does. It is
// computed by every MX host, so that a sender's retry through another
// host finds the first copy: for addresses in ASCII it must stay what
// earlier versions computed.
func TestDedupHash(t *testing.T) {
	data := []byte("Subject: x\r\n\r\nbody\r\n")
	// DedupHash of this message as every earlier version computes it.
	const earlier = "f794b4cb9f98d6518e7ea53bdac7df9c3b3d3423497771464082dd309a4f1716"
	if got := queue.DedupHash("Sender@Example.ORG", []string{"list@lists.example.org", "~Owner/List@Lists.Example.org"}, data); got != earlier {
		t.Errorf("DedupHash of an ASCII message = %s, earlier versions computed %s", got, earlier)
	}
	tests := []struct {
		name         string
		from1, from2 string
		rcpt1, rcpt2 []string
		same         bool
	}{
		{"ASCII case", "a@example.org", "A@EXAMPLE.ORG", []string{"l@x.org", "m@x.org"}, []string{"M@x.org", "L@X.org"}, true},
		{"recipient order", "a@example.org", "a@example.org", []string{"l@x.org", "m@x.org"}, []string{"m@x.org", "l@x.org"}, true},
		{"non-ASCII letters differ in case", "a@example.org", "a@example.org", []string{"~jürgen/liste@x.org"}, []string{"~jÜrgen/liste@x.org"}, false},
		{"KELVIN SIGN is not k", "a@example.org", "a@example.org", []string{"kate@x.org"}, []string{"\u212aate@x.org"}, false},
		{"sender with U+0130", "lists@example.org", "l\u0130sts@example.org", []string{"l@x.org"}, []string{"l@x.org"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h1 := queue.DedupHash(tt.from1, tt.rcpt1, data)
			h2 := queue.DedupHash(tt.from2, tt.rcpt2, data)
			if (h1 == h2) != tt.same {
				t.Errorf("DedupHash(%q, %q) == DedupHash(%q, %q) is %v, want %v", tt.from1, tt.rcpt1, tt.from2, tt.rcpt2, h1 == h2, tt.same)
			}
		})
	}
}
