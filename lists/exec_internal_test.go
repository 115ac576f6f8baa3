package lists

import (
	"testing"

	"mxq/queue"
)

// The record holds ORCPT decoded (queue.Recipient): it is used as it is,
// and a value no receiver should have accepted gives the recipient.
func TestOriginalRecipient(t *testing.T) {
	tests := []struct{ orcpt, want string }{
		{"rfc822;Dev+x@lists.example.org", "Dev+x@lists.example.org"},
		{"RFC822;a+0AX-Injected:+20yes", "a+0AX-Injected:+20yes"},
		{"rfc822;b%0AX-Injected:%20yes", "b%0AX-Injected:%20yes"},
		{"UTF-8;jürgen@example.org", "jürgen@example.org"},
		{"utf-8;a\tb@example.org", "post@lists.example.org"},
		{"utf-8;a\u0085b@example.org", "post@lists.example.org"},
		{"rfc822;a\nb", "post@lists.example.org"},
		{"rfc822;c\x00d", "post@lists.example.org"},
		{"rfc822;\xff", "post@lists.example.org"},
		{"x400;a@b", "post@lists.example.org"},
		{"rfc822;", "post@lists.example.org"},
		{"", "post@lists.example.org"},
	}
	for _, tt := range tests {
		m := &Message{Record: &queue.Record{Rcpts: []queue.Recipient{{Addr: "post@lists.example.org", Params: map[string]string{"ORCPT": tt.orcpt}}}}}
		if got := originalRecipient(m, "post@lists.example.org"); got != tt.want {
			t.Errorf("ORCPT %q: %q, want %q", tt.orcpt, got, tt.want)
		}
	}
}
