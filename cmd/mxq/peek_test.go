package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mxq/queue"
)

// mxq peek -body and mxq dead show -body write a message as it is
// stored, the MX host's header then the client's data, read from Redis
// in chunks: a body of many chunks comes out whole.
func TestBodyCommands(t *testing.T) {
	url, q := startQueue(t)
	ctx := context.Background()
	header := "Received: from client.example.com\r\n\tby mx1.example.org; Tue, 1 Dec 2026 00:00:00 +0000\r\n"
	put := func(size int) (string, []byte) {
		rng := rand.New(rand.NewPCG(uint64(size), 0))
		data := []byte("Subject: big\r\n\r\n")
		for len(data) < size {
			data = append(data, strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(100))+"\r\n"...)
		}
		rec := &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1.example.org", From: "alice@example.com",
			Arrived: time.Now(), Rcpts: []queue.Recipient{{Addr: "dev@lists.example.org"}}}
		if _, err := q.Enqueue(ctx, &queue.Message{Record: rec, Header: []byte(header), Data: data}); err != nil {
			t.Fatal(err)
		}
		return rec.ID, append([]byte(header), data...)
	}
	queued, queuedBody := put(3 << 20)
	dead, deadBody := put(5<<20 + 17)
	copt := queue.DefaultConsumerOptions()
	copt.Block = 10 * time.Millisecond
	c := q.Consumer(copt)
	for done := false; !done; {
		ds, err := c.Fetch(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.ID == dead {
				if err := d.Dead(ctx, "no route"); err != nil {
					t.Fatal(err)
				}
				done = true
			} else if _, err := d.Retry(ctx, errors.New("451 4.3.0 busy")); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		args []string
		want []byte
	}{
		{[]string{"peek", "-body", queued}, queuedBody},
		{[]string{"peek", queued, "-body"}, queuedBody},
		{[]string{"dead", "show", "-body", dead}, deadBody},
	} {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"-redis", url}, tc.args...), &out, &errOut)
		if err != nil || !bytes.Equal(out.Bytes(), tc.want) {
			t.Errorf("mxq %s: %v, %d bytes (first 100: %q), want %d bytes (%q)\n%s", strings.Join(tc.args, " "), err,
				out.Len(), out.Bytes()[:min(100, out.Len())], len(tc.want), tc.want[:100], errOut.String())
		}
	}

	for _, tc := range []struct {
		args []string
		want error
	}{
		{[]string{"peek", "-body", "nosuchid"}, queue.ErrNotFound},
		{[]string{"dead", "show", "-body", queued}, queue.ErrNotFound}, // queued, not dead
		{[]string{"peek", "-body"}, usageError{}},
		{[]string{"dead", "show", "-body", "-json", dead}, usageError{}},
		{[]string{"dead", "ls", "-body"}, usageError{}},
	} {
		_, err := mxq(t, url, tc.args...)
		var ue usageError
		if _, usage := tc.want.(usageError); usage && !errors.As(err, &ue) || !usage && !errors.Is(err, tc.want) {
			t.Errorf("mxq %s: %v, want %T %v", strings.Join(tc.args, " "), err, tc.want, tc.want)
		}
	}
}
