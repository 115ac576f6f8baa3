package smtpd

import (
	"fmt"
	"strings"
	"testing"

	"mxq/internal/smtptest"
)

// Every message's data goes to its queue's spool while it arrives,
// whatever the queue: the session hands over at the commit only what
// arrived since the last batch, never the whole message. A queue cannot
// be given to New without a spool.
func TestDataGoesToSpool(t *testing.T) {
	mq, addr := serveMem(t, testConfig(), Deps{})

	for _, size := range []int{1 << 10, 2 << 20} {
		var b strings.Builder
		b.WriteString("From: a@example.com\r\nSubject: spooled\r\n\r\n")
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, "line %08d, padded to look like the text of a mail ...\r\n", i)
		}
		body := b.String()
		c, _ := smtptest.Dial(t, addr)
		c.Expect("EHLO client.example.com", "250")
		c.Expect("MAIL FROM:<a@example.com>", "250")
		c.Expect("RCPT TO:<~alice/dev@lists.example.org>", "250")
		c.Expect("DATA", "354")
		c.Send(body + ".\r\n")
		got := c.Read()
		id, ok := strings.CutPrefix(got, "250 2.0.0 queued as ")
		if !ok {
			t.Fatalf("%d bytes: %q", size, got)
		}
		mq.mu.Lock()
		m, sp := mq.msgs[id], mq.spooled[id]
		mq.mu.Unlock()
		if !strings.HasSuffix(string(m.Data), body) || len(m.Data) != len(body) {
			t.Errorf("%d bytes: stored %d bytes, not the data sent", size, len(m.Data))
		}
		if size > spoolBatch && (sp.appends < size/spoolBatch-1 || sp.tail > spoolBatch+blockSize) {
			t.Errorf("%d bytes: %d appends to the spool, %d bytes with the commit; want the data in batches of %d",
				size, sp.appends, sp.tail, spoolBatch)
		}
		if size < blockSize && (sp.appends != 0 || sp.tail != len(body)) {
			t.Errorf("%d bytes: %d appends, %d bytes with the commit; want the commit alone", size, sp.appends, sp.tail)
		}
	}
}
