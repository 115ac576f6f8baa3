package lists_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"mxq/lists"
	"mxq/queue"
)

// A complete consumer: it takes every queued message and prints its
// envelope and size. A real handler hands the message on (see Router) and
// must be idempotent by queue id, because a message can come twice.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	q, err := queue.Open("redis://127.0.0.1:6379/0", queue.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	// Consumers of one group share the work; the lease is how long a
	// crashed consumer's message waits before another takes it.
	copt := queue.DefaultConsumerOptions()
	copt.Group = "printer"
	c := lists.NewConsumer(q.Consumer(copt), lists.HandlerFunc(func(ctx context.Context, m *lists.Message) error {
		n, err := io.Copy(io.Discard, m.Body())
		if err != nil {
			return err // any error but a Permanent one is retried later
		}
		for _, rcpt := range m.Pending() {
			if rcpt.Addr == "" {
				return lists.Permanent(fmt.Errorf("empty recipient")) // dead letter
			}
			fmt.Printf("%s: <%s> → <%s>, %d bytes\n", m.Record.ID, m.Record.From, rcpt.Addr, n)
			// Remember each recipient as soon as it is done, so
			// that a retry skips it.
			if err := m.Delivered(ctx, rcpt.Addr); err != nil {
				return err
			}
		}
		return nil // acknowledged: gone from the queue
	}))
	c.Concurrency = 4
	if err := c.Run(ctx); err != nil { // until SIGTERM, then finish what runs
		log.Fatal(err)
	}
}
