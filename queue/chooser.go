package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mxq/setting"
)

// DefaultReaderIdle is how long a consumer may go unseen and still count
// as live. A consumer is seen at least every third of its lease while it
// delivers (each renewal) and all the time while it waits for entries;
// listd's default lease is a minute.
const DefaultReaderIdle = time.Minute

// FormatOptions tune a FormatChooser. Start from DefaultFormatOptions:
// FormatChooser uses them as they are.
type FormatOptions struct {
	// Interval is how often the chooser looks at the consumers.
	Interval time.Duration
	// ReaderIdle is how long a consumer may go unseen and still count
	// as live (see Readers). It must be longer than the longest silence
	// of a live consumer: a third of its lease.
	ReaderIdle time.Duration
	// Logger gets a line each time the format written changes.
	Logger *slog.Logger
}

// DefaultFormatOptions are a FormatChooser's defaults.
func DefaultFormatOptions() FormatOptions {
	return FormatOptions{Interval: time.Second, ReaderIdle: DefaultReaderIdle, Logger: slog.Default()}
}

// Check reports each option FormatChooser cannot use, as a
// *setting.Error.
func (o *FormatOptions) Check() error {
	ck := setting.For(o)
	setting.Positive(ck, &o.Interval)
	setting.Positive(ck, &o.ReaderIdle)
	if o.Logger == nil {
		ck.Add(&o.Logger, setting.Missing)
	}
	return ck.Err()
}

// FormatChooser decides which record format its Queue's Enqueue writes:
// the newest that every live consumer reads (see ChooseFormat), capped by
// the pin of mxq format. It caches the decision, so that no enqueue asks
// Redis, and refreshes it every Interval.
//
// What is guaranteed: Enqueue writes a format only if, at the last
// refresh (at most Interval before), every consumer seen live read it,
// or, with none live, the consumers seen last did. A consumer counts as live
// until it has been unseen for ReaderIdle, so the format goes up only
// ReaderIdle after the last consumer that needed the older one stopped.
// A consumer that starts is seen at the next refresh. Records written
// until then in a format it does not read, and such records already
// queued when it starts, are not for it: a consumer that announces
// leaves them for one that reads them, but a release from before
// announcements dead-letters them. Such a consumer is therefore started
// only once no MX host writes a newer format and none is queued: pin the
// format first (docs/redis.md, "Format versions and upgrades").
type FormatChooser struct {
	q   *Queue
	opt FormatOptions

	mu        sync.Mutex
	connsSeen time.Time // unnamed connections reading the stream, last seen
	conns     int
	last      FormatChoice
	failing   bool
}

// FormatChoice is one decision of a FormatChooser.
type FormatChoice struct {
	// Version is the format written from now on.
	Version int `json:"version"`
	// Pin is the cap set with mxq format pin, 0 for none.
	Pin int `json:"pin,omitempty"`
	// Why says what decided.
	Why string `json:"why"`
	// Readers are the consumers seen.
	Readers []Reader `json:"readers"`
}

// FormatChooser returns the chooser of q's record format. From this call
// until its first successful Refresh, q writes OldestFormat: with nothing
// known about the consumers, the one any of them reads.
//
// opt must pass Check: FormatChooser panics otherwise (see Consumer).
func (q *Queue) FormatChooser(opt FormatOptions) *FormatChooser {
	if err := opt.Check(); err != nil {
		panic(fmt.Sprintf("queue: FormatChooser: %v", err))
	}
	q.formats.write.Store(OldestFormat)
	return &FormatChooser{q: q, opt: opt, last: FormatChoice{Version: OldestFormat}}
}

// Refresh looks at the consumers and the pin once, and sets the format
// Enqueue writes. After an error the format stays as it was.
func (f *FormatChooser) Refresh(ctx context.Context) (FormatChoice, error) {
	readers, err := f.q.Readers(ctx, f.opt.ReaderIdle)
	var pin int
	if err == nil {
		pin, err = f.q.FormatPin(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if !f.failing {
			f.opt.Logger.Warn("record format: cannot see the consumers; writing the same format until they can be seen",
				"format", f.last.Version, "err", err)
		}
		f.failing = true
		return f.last, err
	}
	f.failing = false
	now := time.Now()
	// Unnamed connections are seen only when they happen to be reading:
	// they count as live for ReaderIdle after the last sighting.
	seen := false
	for _, r := range readers {
		if r.Name == "" {
			f.connsSeen, f.conns, seen = now, r.Connections, true
		}
	}
	if since := now.Sub(f.connsSeen); !seen && since < f.opt.ReaderIdle {
		readers = append(readers, Reader{Reads: legacyReads, Live: true, Idle: since, Connections: f.conns})
	}
	v, why := ChooseFormat(readers, pin)
	c := FormatChoice{Version: v, Pin: pin, Why: why, Readers: readers}
	if old := f.q.formats.write.Swap(int32(v)); int(old) != v {
		f.opt.Logger.Info("record format written changed", "format", v, "was", old, "why", why)
	}
	f.last = c
	return c, nil
}

// Run refreshes every Interval until ctx ends, the first time one
// Interval from now: the caller makes the first choice with Refresh
// before it accepts mail.
func (f *FormatChooser) Run(ctx context.Context) error {
	t := time.NewTicker(f.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, f.opt.Interval+f.q.opt.Timeout)
		f.Refresh(rctx)
		cancel()
	}
}
