package lists

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"mxq/queue"
	"mxq/setting"
)

// Source is where a Consumer takes messages from. *queue.Consumer is the
// one to use; it holds each delivery under a lease and settles it.
type Source interface {
	Fetch(ctx context.Context, n int) ([]*queue.Delivery, error)
}

// Handler delivers one message. It returns nil when every pending
// recipient has the message (or was rejected with Message.Reject), an
// error marked Permanent when the message can never be delivered, and any
// other error to have it retried later. It must be idempotent by queue
// id: see the package doc.
type Handler interface {
	Deliver(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Deliver calls f.
func (f HandlerFunc) Deliver(ctx context.Context, m *Message) error { return f(ctx, m) }

// Message is a queued message handed to a Handler.
type Message struct {
	// Record is the envelope and what the MX host knew about the client:
	// queue id, sender, recipients, authentication results.
	Record *queue.Record
	// Attempt is 1 on the first delivery attempt.
	Attempt int
	d       *queue.Delivery
	// unrecorded is the last pending recipient, delivered but recorded
	// only by the acknowledgement (or by flush, when there is none).
	unrecorded string
}

// Body returns a reader of the whole message (the MX host's Received and
// Authentication-Results headers, then the message as sent). Each call
// starts at the beginning. It reads the message from Redis a few chunks
// at a time as it goes, so that a big message is never held whole: a
// read error is a Redis error, and the delivery should be retried.
func (m *Message) Body() io.Reader { return m.d.Body() }

// Size is the body's length in bytes.
func (m *Message) Size() int { return int(m.Record.Size) }

// Pending returns the recipients that earlier attempts did not settle: a
// handler delivers to these, not to all of Record.Rcpts.
func (m *Message) Pending() []queue.Recipient { return m.d.Pending() }

// Delivered records that rcpt has the message; no later attempt delivers
// to it again. For the last pending recipient the record is the
// acknowledgement itself, which follows at once (one write to Redis
// fewer per message); should the attempt end any other way, the
// recipient is recorded before the message is retried.
func (m *Message) Delivered(ctx context.Context, rcpt string) error {
	last := m.unrecorded == ""
	for _, r := range m.d.Pending() {
		if r.Addr != rcpt {
			last = false
		}
	}
	if last && len(m.d.Rejected()) == 0 {
		m.unrecorded = rcpt
		return nil
	}
	if err := m.flush(ctx); err != nil {
		return err
	}
	return persist(ctx, func(ctx context.Context) error { return m.d.Delivered(ctx, rcpt) })
}

// flush records the recipient left to the acknowledgement.
func (m *Message) flush(ctx context.Context) error {
	if m.unrecorded == "" {
		return nil
	}
	if err := persist(ctx, func(ctx context.Context) error { return m.d.Delivered(ctx, m.unrecorded) }); err != nil {
		return err
	}
	m.unrecorded = ""
	return nil
}

// Reject records that rcpt can never get the message; the message is
// dead-lettered with reason once no recipient is pending.
func (m *Message) Reject(ctx context.Context, rcpt string, reason error) error {
	return persist(ctx, func(ctx context.Context) error { return m.d.Reject(ctx, rcpt, reason) })
}

// Outcome is how one delivery attempt ended.
type Outcome int

const (
	// Delivered: acknowledged, gone from the queue.
	Delivered Outcome = iota
	// Retried: a temporary failure; the next attempt is scheduled.
	Retried
	// Dead: moved to the dead-letter stream.
	Dead
	// Released: the consumer stopped; the message went back for another
	// consumer without counting a failure.
	Released
	// LeaseLost: another consumer took the message over.
	LeaseLost
	// Unsettled: the result could not be written to Redis; the message
	// comes back when its lease runs out.
	Unsettled
	// Redelivered: the message came back after this consumer had
	// acknowledged it (a failover lost the acknowledgement:
	// queue.Delivery.AckedBefore). Every recipient had it: it was
	// acknowledged again, not delivered again.
	Redelivered
	// Left: the entry's record format is newer than this consumer reads;
	// it was handed back, neither acknowledged nor dead-lettered, for a
	// consumer that reads it.
	Left
)

var outcomeNames = [...]string{"delivered", "retried", "dead", "released", "lease lost", "unsettled", "redelivered", "left"}

func (o Outcome) String() string { return outcomeNames[o] }

// Result describes one finished attempt, for metrics.
type Result struct {
	Record  *queue.Record // nil for an entry that could not be decoded
	ID      string
	Attempt int
	Outcome Outcome
	Err     error         // the handler's error, or the settling error
	Elapsed time.Duration // the attempt's duration
}

// Defaults of a Consumer (NewConsumer).
const (
	// DefaultConcurrency bounds all deliveries together. It is high
	// because the cheap deliveries want it: copies written into one
	// Maildir at once share their fsyncs, and 128 at once kept up with
	// an MX host where 8 gave half its rate. Each destination that cannot
	// take as many (list software over LMTP, programs) is held lower by a
	// Limiter of its own (DefaultMaxParallel). A delivery holds a few
	// chunks of its message, whatever its size: about 1 MiB each.
	DefaultConcurrency = 128
	// DefaultTimeout bounds one delivery attempt.
	DefaultTimeout = 10 * time.Minute
	// DefaultGrace is how long deliveries may finish after a stop.
	DefaultGrace = 30 * time.Second
)

// Consumer runs a Handler on every message of a Source. Make one with
// NewConsumer, which gives its settings their defaults: Run uses them as
// they are, and refuses what it cannot use.
type Consumer struct {
	Source  Source
	Handler Handler
	// Concurrency is how many deliveries run at once.
	Concurrency int
	// Timeout bounds one delivery attempt; when it passes, the attempt
	// counts as a temporary failure.
	Timeout time.Duration
	// Grace is how long Run lets deliveries in flight finish after its
	// context ends; the ones still running then are stopped and released
	// to other consumers.
	Grace time.Duration
	// Logger gets one line per attempt.
	Logger *slog.Logger
	// Observe, when set, is called after every attempt.
	Observe func(Result)
}

// NewConsumer returns a Consumer of src that runs h, with the default
// settings and slog.Default() for its logger.
func NewConsumer(src Source, h Handler) *Consumer {
	return &Consumer{Source: src, Handler: h, Concurrency: DefaultConcurrency, Timeout: DefaultTimeout,
		Grace: DefaultGrace, Logger: slog.Default()}
}

// check reports what Run cannot use, as *setting.Errors.
func (c *Consumer) check() error {
	ck := setting.For(c)
	for _, p := range []struct {
		v  any
		ok bool
	}{{&c.Source, c.Source != nil}, {&c.Handler, c.Handler != nil}, {&c.Logger, c.Logger != nil}} {
		if !p.ok {
			ck.Add(p.v, setting.Missing)
		}
	}
	setting.Positive(ck, &c.Concurrency)
	setting.Positive(ck, &c.Timeout)
	setting.Positive(ck, &c.Grace)
	return ck.Err()
}

// Run consumes until ctx ends, then stops as Grace says and returns nil.
// Trouble with Redis is logged and retried, never returned: a consumer
// outlives a Redis restart. A Consumer it cannot use is its one error.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("lists: Consumer: %w", err)
	}
	n, grace, log := c.Concurrency, c.Grace, c.Logger
	// Deliveries outlive ctx by up to Grace.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	// Up to n deliveries run, and up to n more wait, fetched ahead, so
	// that one read from the stream serves several deliveries under load.
	// A waiting delivery's lease is renewed like a running one's.
	slots := make(chan struct{}, 2*n)
	work := make(chan job, n)
	var wg sync.WaitGroup
	c.startWorkers(ctx, runCtx, n, work, slots, &wg)
	down := &outage{log: log}
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1
		for more := true; more && free < 2*n; {
			select {
			case slots <- struct{}{}:
				free++
			default:
				more = false
			}
		}
		ds, err := c.Source.Fetch(ctx, free)
		for range free - len(ds) {
			<-slots
		}
		for _, d := range ds {
			hctx, stop := d.Hold(runCtx)
			work <- job{d: d, hctx: hctx, stopHold: stop, fetched: time.Now()}
		}
		if err == nil {
			down.ok()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t := time.NewTimer(down.failed(err))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	close(work)
	c.finish(&wg, grace, stopRuns)
	return nil
}

// startWorkers starts n goroutines that run the jobs of work, and release
// them unstarted once ctx (the stop) has ended.
func (c *Consumer) startWorkers(ctx, runCtx context.Context, n int, work <-chan job, slots <-chan struct{}, wg *sync.WaitGroup) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if ctx.Err() != nil {
					c.release(runCtx, j) // stopping: not started, hand it on
				} else {
					c.deliver(runCtx, j)
				}
				<-slots
			}
		}()
	}
}

// finish waits for the workers for up to grace, then interrupts the
// deliveries still running (stopRuns) and waits for them to settle.
func (c *Consumer) finish(wg *sync.WaitGroup, grace time.Duration, stopRuns func()) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		c.Logger.Warn("stop: grace period over; interrupting deliveries in flight", "grace", grace)
		stopRuns()
		<-done
	}
}

// job is a fetched delivery whose lease is held.
type job struct {
	d        *queue.Delivery
	hctx     context.Context
	stopHold func()
	fetched  time.Time
}

// release hands back a delivery that was fetched but not started.
func (c *Consumer) release(runCtx context.Context, j job) {
	j.stopHold()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
	defer cancel()
	res := Result{Record: j.d.Record, ID: j.d.ID, Attempt: j.d.Attempt, Outcome: Released}
	if err := persist(sctx, j.d.Release); err != nil {
		res.Outcome, res.Err = Unsettled, err
	}
	res.Elapsed = time.Since(j.fetched)
	c.log(res, j.d)
	if c.Observe != nil {
		c.Observe(res)
	}
}

// leave hands back an entry whose record format is newer than this
// consumer reads: readers never throw away what is too new.
func (c *Consumer) leave(runCtx context.Context, j job) {
	j.stopHold()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
	defer cancel()
	res := Result{ID: j.d.ID, Attempt: j.d.Attempt, Outcome: Left, Err: j.d.Err()}
	if err := j.d.Leave(sctx); errors.Is(err, queue.ErrLeaseLost) {
		res.Outcome = LeaseLost
	} else if err != nil {
		res.Outcome, res.Err = Unsettled, errors.Join(res.Err, err)
	}
	res.Elapsed = time.Since(j.fetched)
	c.log(res, j.d)
	if c.Observe != nil {
		c.Observe(res)
	}
}

// deliver runs one attempt and settles it.
func (c *Consumer) deliver(runCtx context.Context, j job) {
	if j.d.TooNew() {
		c.leave(runCtx, j)
		return
	}
	d, hctx, start := j.d, j.hctx, time.Now()
	dctx, cancel := context.WithTimeout(hctx, c.Timeout)
	m := &Message{Record: d.Record, Attempt: d.Attempt, d: d}
	var err error
	switch {
	case d.AckedBefore():
		// Every recipient has it: a failover lost the acknowledgement.
	case d.Err() != nil:
		err = Permanent(d.Err())
	case len(d.Pending()) > 0:
		err = c.call(dctx, m)
		if err != nil && dctx.Err() == context.DeadlineExceeded && hctx.Err() == nil {
			err = Temporary(fmt.Errorf("delivery timed out after %v: %w", c.Timeout, err))
		}
	}
	cancel()
	lost := errors.Is(context.Cause(hctx), queue.ErrLeaseLost)
	j.stopHold()

	sctx, scancel := context.WithTimeout(context.WithoutCancel(runCtx), 30*time.Second)
	defer scancel()
	res := Result{Record: d.Record, ID: d.ID, Attempt: d.Attempt, Err: err}
	var serr error
	if lost || err != nil || len(d.Rejected()) > 0 {
		// Not acknowledged now: the recipient whose recording was left
		// to the acknowledgement is recorded for the next attempt, or
		// for the consumer that took the message over.
		serr = m.flush(sctx)
	}
	switch {
	case serr != nil:
	case lost:
		res.Outcome = LeaseLost
	case d.AckedBefore():
		res.Outcome, serr = Redelivered, persist(sctx, d.Ack)
	case err != nil && runCtx.Err() != nil:
		res.Outcome, serr = Released, persist(sctx, d.Release)
	case err == nil && len(d.Rejected()) == 0:
		if serr = persist(sctx, d.Ack); serr != nil {
			m.flush(sctx) // best effort: the error is reported below
		}
		res.Outcome = Delivered
	case err == nil:
		res.Err = Permanent(rejections(d.Rejected()))
		res.Outcome, serr = Dead, c.dead(sctx, d, res.Err.Error())
	case IsPermanent(err):
		res.Outcome, serr = Dead, c.dead(sctx, d, err.Error())
	default:
		var dead bool
		serr = persist(sctx, func(ctx context.Context) (err2 error) {
			dead, err2 = d.Retry(ctx, err)
			return err2
		})
		res.Outcome = Retried
		if dead {
			res.Outcome = Dead
		}
	}
	if errors.Is(serr, queue.ErrLeaseLost) {
		res.Outcome, serr = LeaseLost, nil
	}
	if serr != nil {
		res.Outcome, res.Err = Unsettled, errors.Join(err, serr)
	}
	res.Elapsed = time.Since(start)
	c.log(res, d)
	if c.Observe != nil {
		c.Observe(res)
	}
}

// dead dead-letters d, riding through a brief outage.
func (c *Consumer) dead(ctx context.Context, d *queue.Delivery, reason string) error {
	return persist(ctx, func(ctx context.Context) error { return d.Dead(ctx, reason) })
}

// call runs the handler, turning a panic into a temporary error.
func (c *Consumer) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.Logger.Error("handler panicked", "queue_id", m.Record.ID, "panic", p, "stack", string(debug.Stack()))
			err = Temporary(fmt.Errorf("handler panicked: %v", p))
		}
	}()
	return c.Handler.Deliver(ctx, m)
}

// rejections is the dead-letter reason when every recipient is settled
// but some were rejected.
func rejections(r map[string]string) error {
	rcpts := make([]string, 0, len(r))
	for k := range r {
		rcpts = append(rcpts, k)
	}
	sort.Strings(rcpts)
	parts := make([]string, len(rcpts))
	for i, k := range rcpts {
		parts[i] = "<" + k + ">: " + r[k]
	}
	return fmt.Errorf("rejected for good: %s", strings.Join(parts, "; "))
}

// log writes the one summary line of an attempt.
func (c *Consumer) log(r Result, d *queue.Delivery) {
	attrs := []any{"queue_id", r.ID, "attempt", r.Attempt, "outcome", r.Outcome.String(), "elapsed", r.Elapsed.Round(time.Millisecond)}
	if d.Record != nil {
		attrs = append(attrs, "from", d.Record.From, "rcpts", len(d.Record.Rcpts), "host", d.Record.Host)
	}
	if r.Outcome == Left {
		attrs = append(attrs, "format", d.Format())
	}
	level := slog.LevelInfo
	if r.Err != nil {
		attrs = append(attrs, "err", r.Err.Error())
		level = slog.LevelWarn
	}
	if r.Outcome == Dead || r.Outcome == Unsettled {
		level = slog.LevelError
	}
	c.Logger.Log(context.Background(), level, "delivery", attrs...)
}
