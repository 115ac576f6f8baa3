package lists

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"mxq/queue"
)

// A settlement tried again after a transient failure that answers
// ErrSettled went through the first time: persist returns success. On a
// first try ErrSettled is returned as it is (a lease lost).
func TestPersistSettledAfterLostReply(t *testing.T) {
	// A real transient failure: Redis refuses the connection.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	qopt := queue.DefaultOptions()
	qopt.Timeout = time.Second
	q, err := queue.Open("redis://"+addr+"/0", qopt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, transient := q.Depth(context.Background())
	if !queue.Transient(transient) {
		t.Fatalf("a refused connection: %v, want a transient error", transient)
	}
	settled := fmt.Errorf("acknowledge 01abc: %w", queue.ErrSettled)

	tries := 0
	err = persist(context.Background(), func(context.Context) error {
		tries++
		if tries == 1 {
			return transient
		}
		return settled
	})
	if err != nil || tries != 2 {
		t.Errorf("settled on the second try: %v after %d tries, want success after 2", err, tries)
	}

	tries = 0
	err = persist(context.Background(), func(context.Context) error { tries++; return settled })
	if !errors.Is(err, queue.ErrLeaseLost) || tries != 1 {
		t.Errorf("settled on the first try: %v after %d tries, want the lease lost after 1", err, tries)
	}
}
