package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// mxq format shows the consumers, the queued messages by format and the
// pin; format pin and unpin set and lift it; a bad pin is a usage error.
func TestFormatCommand(t *testing.T) {
	url, q := startQueue(t)
	ctx := context.Background()
	rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "a@example.com", Arrived: time.Now(),
		Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}}}
	if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Data: []byte("Subject: x\r\n\r\nx\r\n")}); err != nil {
		t.Fatal(err)
	}
	copt := queue.DefaultConsumerOptions()
	copt.Name, copt.Program, copt.Block = "c1", "listd test", 10*time.Millisecond
	c := q.Consumer(copt)
	if _, err := c.Fetch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if out, err := mxq(t, url, "format", "pin", "1"); err != nil || !strings.Contains(out, "no format newer than 1") {
		t.Fatalf("format pin 1: %v\n%s", err, out)
	}
	out, err := mxq(t, url, "format", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var res formatResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Pin != 1 || res.Choice != 1 || res.Queued["2"] != 1 || len(res.Consumers) != 1 || res.Consumers[0].Program != "listd test" {
		t.Errorf("format -json: %+v", res)
	}
	out, err = mxq(t, url, "format")
	if err != nil || !strings.Contains(out, "pin: 1") || !strings.Contains(out, "listd/c1") || !strings.Contains(out, "2: 1") {
		t.Errorf("format: %v\n%s", err, out)
	}
	if out, err := mxq(t, url, "format", "unpin"); err != nil || !strings.Contains(out, "unpinned") {
		t.Errorf("format unpin: %v\n%s", err, out)
	}
	if pin, _ := q.FormatPin(ctx); pin != 0 {
		t.Errorf("pin %d after unpin", pin)
	}
	var ue usageError
	if _, err := mxq(t, url, "format", "pin", "0"); !errors.As(err, &ue) {
		t.Errorf("format pin 0: %v, want a usage error", err)
	}
	out, err = mxq(t, url, "-version")
	if err != nil || !strings.Contains(out, "reads 1, 2") {
		t.Errorf("-version: %v\n%s", err, out)
	}
}
