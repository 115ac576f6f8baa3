package smtpd_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mxq/queue"
	"mxq/queue/queuetest"
)

// manySenders lets in the sessions of startSenders, which all come
// from 127.0.0.1.
func manySenders(c *setup) {
	c.MaxConnectionsPerIP = 1000
	c.ConnectionRateLimit, c.MessageRateLimit, c.RecipientRateLimit = -1, -1, -1
}

// senders are SMTP clients sending one message after another, each in
// its own session, and recording every final reply.
type senders struct {
	mu       sync.Mutex
	accepted map[string]bool // queue ids answered 250
	refused  []string        // every other final reply or error
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startSenders(addr string, n int) *senders {
	s := &senders{accepted: make(map[string]bool), stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for j := 0; ; j++ {
				select {
				case <-s.stop:
					return
				default:
				}
				s.record(sendOne(addr, fmt.Sprintf("sender %d message %d", i, j)))
			}
		}()
	}
	return s
}

// sendOne sends one message in a session of its own and returns the
// queue id of a 250, or the error.
func sendOne(addr, subject string) (string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello("client.example.com"); err != nil {
		return "", err
	}
	if err := c.Mail("alice@example.com", nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(listAddr, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(message(subject))); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit()
	_, text, _ := strings.Cut(resp.StatusText, " ") // after the enhanced code
	id, ok := strings.CutPrefix(text, "queued as ")
	if !ok {
		return "", fmt.Errorf("250 without a queue id: %q", resp.StatusText)
	}
	return id, nil
}

func (s *senders) record(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refused = append(s.refused, err.Error())
		return
	}
	if s.accepted[id] {
		s.refused = append(s.refused, "queue id answered twice: "+id)
	}
	s.accepted[id] = true
}

func (s *senders) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// waitCount waits until n messages in all were answered 250.
func (s *senders) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages accepted of %d in 2 minutes; refused: %v", s.count(), n, s.someRefused())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// someRefused is the first few refusals.
func (s *senders) someRefused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[:min(len(s.refused), 5)]
}

func (s *senders) halt() {
	close(s.stop)
	s.wg.Wait()
}

// checkQueued compares what the senders were told with the stream: every
// message answered 250 is there, once, and nothing else is.
func checkQueued(t *testing.T, q *queue.Queue, s *senders) {
	t.Helper()
	recs, err := q.Peek(context.Background(), int64(len(s.accepted)+1000))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for _, r := range recs {
		seen[r.ID]++
	}
	lost, dup := 0, 0
	for id := range s.accepted {
		if seen[id] == 0 {
			lost++
		}
	}
	for id, n := range seen {
		if n > 1 || !s.accepted[id] {
			dup++
		}
	}
	if lost > 0 || dup > 0 || len(s.refused) > 0 {
		t.Errorf("%d answered 250: %d lost, %d queued twice or never confirmed, %d refused %v",
			len(s.accepted), lost, dup, len(s.refused), s.someRefused())
		return
	}
	t.Logf("%d messages answered 250, all queued once; 0 refused", len(s.accepted))
}

// kill -9 of the primary while 20 sessions send: Sentinel promotes a
// replica, the sessions wait through the failover, every message
// answered 250 is on the new primary, none is refused, and the enqueues
// tried again queued nothing twice.
func TestFailoverKill9(t *testing.T) {
	set := queuetest.StartSet(t, 2)
	qopt := queue.DefaultOptions()
	qopt.Timeout, qopt.Replicas, qopt.ReplicaTimeout = 2*time.Second, 1, time.Second
	q := openQueue(t, set.URL(), qopt)
	e := serveQueue(t, q, "mx1.example.org", manySenders)
	s := startSenders(e.addr, 20)
	s.waitCount(t, 100)
	old := set.Primary()
	old.Kill()
	t0, before := time.Now(), s.count()
	set.WaitFailover(old, 1)
	s.waitCount(t, s.count()+100)
	s.halt()
	t.Logf("failover in %v; %d messages answered while it ran", time.Since(t0).Round(time.Millisecond), s.count()-before)
	checkQueued(t, q, s)
}

// A single Redis, no Sentinel, stopped for 3 s and started again (its
// AOF read back): the sessions that were waiting get their 250, none a
// 451, and the queue holds each message once.
func TestRedisRestartRideThrough(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org", manySenders)
	s := startSenders(e.addr, 5)
	s.waitCount(t, 50)
	e.redis.Stop()
	time.Sleep(3 * time.Second) // the outage itself
	e.redis.Restart()
	s.waitCount(t, s.count()+50)
	s.halt()
	checkQueued(t, e.q, s)
}

// The same message comes back while its first copy is on no replica: the
// first enqueue's WAIT timed out (451), the sender tried again, and the
// retry, found by the dedup key, must not be answered 250 until a
// replica has the original write.
func TestDuplicateWaitsForOriginal(t *testing.T) {
	primary := queuetest.StartRedis(t)
	replica := queuetest.StartRedis(t, queuetest.Config("replicaof "+strings.Replace(primary.Addr(), ":", " ", 1)))
	qopt := queue.DefaultOptions()
	qopt.Timeout, qopt.Replicas, qopt.ReplicaTimeout = 2*time.Second, 1, 200*time.Millisecond
	q := openQueue(t, primary.URL(), qopt)
	waitFor(t, "replica in sync", func() bool {
		r, err := q.Redis().Replication(context.Background())
		return err == nil && len(r.Replicas) > 0 && r.Replicas[0].State == "online"
	})
	e := serveQueue(t, q, "mx1.example.org", func(c *setup) { c.RideThrough = 3 * time.Second })
	replica.Pause()
	defer replica.Resume()
	msg := message("one copy")
	first := startData(t, e.addr)
	first.Send(msg + ".\r\n")
	if got := first.Read(); !strings.HasPrefix(got, "451 4.3.0") {
		t.Fatalf("replica paused: %q, want 451 4.3.0", got)
	}
	retry := startData(t, e.addr)
	retry.Send(msg + ".\r\n")
	reply := make(chan string, 1)
	go func() { reply <- retry.Read() }()
	select {
	case got := <-reply:
		t.Fatalf("retry answered %q while the replica is paused: no replica has the original", got)
	case <-time.After(time.Second):
	}
	replica.Resume()
	if got := <-reply; !strings.HasPrefix(got, "250 2.0.0 queued as ") {
		t.Fatalf("retry after the replica is back: %q, want 250", got)
	}
	if n, _ := q.Depth(context.Background()); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
}

// A shutdown ends a session's wait for the queue in time for its reply:
// the transaction is answered 451 before the shutdown's deadline, and
// the session then closed with 421, rather than cut without a word.
func TestShutdownEndsRideThrough(t *testing.T) {
	e := newEnv(t, nil, "mx1.example.org")
	c := startData(t, e.addr)
	e.redis.Stop()
	c.Send(message("waiting") + ".\r\n")
	waitFor(t, "the session to wait for the queue", func() bool {
		return e.srv.QueueWaiting() == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	if got := c.Read(); !strings.HasPrefix(got, "451 4.3.0") {
		t.Errorf("reply to a session waiting at shutdown: %q, want 451 4.3.0", got)
	}
	if got := c.Read(); !strings.HasPrefix(got, "421 4.3.2") {
		t.Errorf("then: %q, want 421 4.3.2", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v, want nil: the session ended before the deadline", err)
	}
}
