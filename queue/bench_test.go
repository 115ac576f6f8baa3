package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// BenchmarkEnqueue measures one enqueue of a 10 KiB message against a
// Redis with appendfsync always. Its reference is BenchmarkEnqueue/set:
// one plain SET of the same body on the same server, the least a durable
// write can cost; compare the two as a ratio.
func BenchmarkEnqueue(b *testing.B) {
	r := queuetest.StartRedis(b)
	q, err := queue.Open(r.URL(), queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	body := []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 10<<10/80))
	b.Run("set", func(b *testing.B) {
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
		defer rdb.Close()
		b.SetBytes(int64(len(body)))
		for i := 0; b.Loop(); i++ {
			if err := rdb.Set(ctx, fmt.Sprint("ref:", i), body, 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("enqueue", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; b.Loop(); i++ {
			m := &queue.Message{
				Record: &queue.Record{ID: queue.NewID(time.Now()), Host: "mx1", From: "a@example.com",
					Rcpts: []queue.Recipient{{Addr: "~a/b@lists.example.org"}}},
				Data: append([]byte(fmt.Sprintf("Message-ID: <%d@x>\r\n", i)), body...),
			}
			if _, err := q.Enqueue(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
