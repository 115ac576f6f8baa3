package network

import (
	"context"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// A message handed to the sender's Postfix reaches the queue through the
// MX records: DNS, Postfix and mxd in their own hosts.
func TestSmoke(tt *testing.T) {
	t := newPhasedT(tt)
	t.SetPhase("smoke")
	lab := NewLab(t)
	t.logs = lab.Results
	z := &Zone{Name: "lists.example.org", MXTTL: 3, KeyName: "mxq-update"}
	writeKey(t, lab.Dir, z)
	dns1 := lab.AddHost("dns1", "")
	dns2 := lab.AddHost("dns2", "")
	mx := lab.AddHost("mx1", dns1.IP)
	lists := lab.AddHost("lists", dns1.IP)
	sender := lab.AddHost("sender", dns1.IP)
	ips := map[string]string{"dns1": dns1.IP, "dns2": dns2.IP, "mx1": mx.IP, "mx2": mx.IP, "mx3": mx.IP, "lists": lists.IP, "sender": sender.IP}
	StartKnot(t, dns2, z, dns1.IP)
	StartBIND(t, dns1, z, ips, dns2.IP)
	StartRedis(t, lists)
	redisURL := "redis://" + lists.IP + ":6379/0"
	q, err := queue.Open(redisURL, queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.AddRecipients(context.Background(), "~*/*@"+z.Name); err != nil {
		t.Fatal(err)
	}
	m := NewMXD(t, mx, "mx1.lists.example.org", z.Name, redisURL, dns1.IP+":53")
	m.Start(t, command("mxd"))
	pf := StartPostfix(t, sender, z.Name)

	msg := "From: a@sender.lists.example.org\r\nTo: ~a/dev@lists.example.org\r\nSubject: smoke\r\nMessage-ID: <smoke@sender.lists.example.org>\r\n\r\nhello\r\n"
	if err := smtp.SendMail(sender.IP+":25", nil, "a@sender.lists.example.org", []string{"~a/dev@lists.example.org"}, []byte(msg)); err != nil {
		t.Fatalf("submit to postfix: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := q.Peek(context.Background(), 10)
		if err == nil && len(recs) == 1 {
			if recs[0].ClientIP != sender.IP || recs[0].Host != "mx1.lists.example.org" || recs[0].Auth == nil || recs[0].Auth.SPF != "pass" {
				t.Errorf("record %+v", recs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not queued (postfix queue %d):\n%s", pf.QueueCount(), tailText(pf.Log(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The message is in the queue once mxd has its commit; Postfix logs
	// status=sent after the 250 reaches it, through its log daemon.
	waitUntil(t, 10*time.Second, "postfix to log status=sent", func() bool {
		return strings.Contains(pf.Log(), "status=sent")
	})
}
