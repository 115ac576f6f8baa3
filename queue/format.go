package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Writers follow readers. Every consumer announces the record formats it
// reads in {NAME}:consumers:GROUP; a producer writes the newest format
// that every live consumer reads (FormatChooser), so that a rolling
// upgrade may take the hosts in any order. The "Format versions and
// upgrades" section of docs/redis.md is the operator's side of this.

// Formats returns the record formats this code reads, and may write,
// oldest first.
func Formats() []int {
	out := make([]int, 0, FormatVersion-OldestFormat+1)
	for v := OldestFormat; v <= FormatVersion; v++ {
		out = append(out, v)
	}
	return out
}

// FormatList writes formats for people: "1, 2".
func FormatList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// legacyReads are the formats read by a consumer that announces nothing:
// every release before announcements read format 1 and no later one (the
// releases between chunked bodies and announcements read 2 as well, and
// are treated as if they did not: that only delays the switch to 2).
var legacyReads = []int{1}

// clientName names every connection this code opens (CLIENT SETNAME),
// so that a connection without it that reads the stream is known to be a
// consumer that announces nothing.
const clientName = "mxq"

// formatState is the record format a Queue writes, and how many records
// of each format it wrote.
type formatState struct {
	write   atomic.Int32 // 0: FormatVersion, until a FormatChooser decides
	written [FormatVersion + 1]atomic.Int64
	// joins are the format 1 bodies being joined in memory (format1.go).
	joinOnce sync.Once
	joins    chan struct{}
}

// WriteFormat is the record format Enqueue writes now: FormatVersion
// unless a FormatChooser decided otherwise.
func (q *Queue) WriteFormat() int {
	if v := q.formats.write.Load(); v != 0 {
		return int(v)
	}
	return FormatVersion
}

// Written is how many records of format v this Queue has committed.
func (q *Queue) Written(v int) int64 {
	if v < 0 || v > FormatVersion {
		return 0
	}
	return q.formats.written[v].Load()
}

// SetFormatPin caps the record format every MX host writes at v: they
// write no newer one, and still an older one while a live consumer
// needs it. 0 removes the cap. The hosts follow within their refresh
// interval.
func (q *Queue) SetFormatPin(ctx context.Context, v int) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if v == 0 {
		return classify(q.rdb.Del(ctx, q.key("format")).Err())
	}
	if v < OldestFormat {
		return fmt.Errorf("format %d: the oldest format is %d", v, OldestFormat)
	}
	return classify(q.rdb.Set(ctx, q.key("format"), v, 0).Err())
}

// FormatPin returns the cap SetFormatPin set, 0 when there is none.
func (q *Queue) FormatPin(ctx context.Context) (int, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	s, err := q.rdb.Get(ctx, q.key("format")).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s holds %q, not a format version", q.key("format"), s)
	}
	return v, nil
}

// Reader is a consumer of the queue as producers see it.
type Reader struct {
	// Group and Name identify the consumer; both are empty for the
	// connections of consumers that announce nothing (Connections).
	Group string `json:"group,omitempty"`
	Name  string `json:"name,omitempty"`
	// Announced is whether the consumer announces what it reads. One
	// that does not is a release from before announcements: it reads
	// format 1 only.
	Announced bool `json:"announced"`
	// Program is the program and version the consumer announced.
	Program string `json:"program,omitempty"`
	// Reads are the record formats it reads.
	Reads []int `json:"reads"`
	// Idle is how long ago it was last seen: its idle time in the
	// consumer group (a delivery, a claim) or its last announcement,
	// whichever is later.
	Idle time.Duration `json:"idle"`
	// Live is whether it was seen within the reader idle limit.
	Live bool `json:"live"`
	// Pending is how many entries it holds.
	Pending int64 `json:"pending"`
	// Connections is, for the entry without a name, how many connections
	// that do not name themselves are reading the stream.
	Connections int `json:"connections,omitempty"`
}

// label names r in logs and in mxq.
func (r Reader) label() string {
	if r.Name == "" {
		return fmt.Sprintf("%d unnamed connection(s) reading the stream", r.Connections)
	}
	return r.Group + "/" + r.Name
}

// announcement is what a consumer writes about itself into
// {NAME}:consumers:GROUP, under its name.
type announcement struct {
	Program string    `json:"program,omitempty"`
	Reads   []int     `json:"reads"`
	Seen    time.Time `json:"seen"`
}

// Readers returns every consumer of every group, announced or not, and
// the unnamed connections reading the stream; a reader counts as live
// when it was seen within idle.
//
// A consumer that announces nothing is seen two ways. Its idle time in
// the group restarts with every entry it is given and every claim (its
// lease renewals), which covers a busy consumer; Redis 7.0 does not
// restart it for a read that finds nothing, so a quiet one is seen by
// its connection instead: CLIENT LIST shows it blocked in XREADGROUP,
// without the name every connection of this code carries. Where CLIENT
// LIST is refused (an ACL), only the first way is left.
func (q *Queue) Readers(ctx context.Context, idle time.Duration) ([]Reader, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	now := time.Now()
	groups, err := q.rdb.XInfoGroups(ctx, q.key("stream")).Result()
	if err != nil && !noSuchKey(err) {
		return nil, fmt.Errorf("consumer groups: %w", classify(err))
	}
	type cmds struct {
		members *redis.XInfoConsumersCmd
		ann     *redis.MapStringStringCmd
	}
	cs := make([]cmds, len(groups))
	_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range groups {
			cs[i] = cmds{p.XInfoConsumers(ctx, q.key("stream"), g.Name), p.HGetAll(ctx, q.key("consumers", g.Name))}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", classify(err))
	}
	var out []Reader
	for i, g := range groups {
		anns := map[string]announcement{}
		for name, raw := range cs[i].ann.Val() {
			var a announcement
			if json.Unmarshal([]byte(raw), &a) == nil {
				anns[name] = a
			}
		}
		for _, m := range cs[i].members.Val() {
			r := Reader{Group: g.Name, Name: m.Name, Idle: max(m.Idle, 0), Pending: m.Pending, Reads: legacyReads}
			if a, ok := anns[m.Name]; ok {
				r.Announced, r.Program, r.Reads = true, a.Program, a.Reads
				r.Idle = min(r.Idle, max(now.Sub(a.Seen), 0))
				delete(anns, m.Name)
			}
			r.Live = r.Idle < idle
			out = append(out, r)
		}
		// Announced and not (or no longer) in the group: about to read,
		// or gone.
		for name, a := range anns {
			age := max(now.Sub(a.Seen), 0)
			out = append(out, Reader{Group: g.Name, Name: name, Announced: true, Program: a.Program,
				Reads: a.Reads, Idle: age, Live: age < idle})
		}
	}
	if n, err := q.readerConns(ctx); err == nil && n > 0 {
		out = append(out, Reader{Reads: legacyReads, Live: true, Connections: n})
	}
	return out, nil
}

// readerConns counts the connections to the queue's database that read
// the stream and do not carry clientName: consumers that announce
// nothing.
func (q *Queue) readerConns(ctx context.Context) (int, error) {
	s, err := q.rdb.Do(ctx, "CLIENT", "LIST", "TYPE", "normal").Text()
	if err != nil {
		return 0, classify(err)
	}
	db := strconv.Itoa(q.rdb.Options().DB)
	n := 0
	for _, line := range strings.Split(s, "\n") {
		f := clientFields(line)
		if f["db"] != db || f["name"] == clientName || strings.HasPrefix(f["name"], clientName+":") {
			continue
		}
		if c := f["cmd"]; c == "xreadgroup" || c == "xautoclaim" {
			n++
		}
	}
	return n, nil
}

// clientFields splits a line of CLIENT LIST into its key=value fields.
func clientFields(line string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// noSuchKey is the error of XINFO on a stream that does not exist yet.
func noSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// ChooseFormat picks the record format to write: the newest one, not
// newer than pin (0: no pin), that every live reader reads. With no live
// reader it writes for the readers seen last, the likeliest to come
// back (a consumer restarting, the lists host rebooting); with no reader
// ever seen, the newest. why says what decided.
func ChooseFormat(readers []Reader, pin int) (v int, why string) {
	top := FormatVersion
	if pin > 0 {
		top = max(min(top, pin), OldestFormat)
	}
	var live, last []Reader
	for _, r := range readers {
		switch {
		case r.Live:
			live = append(live, r)
		case len(last) == 0 || r.Idle < last[0].Idle:
			last = []Reader{r}
		case r.Idle == last[0].Idle:
			last = append(last, r)
		}
	}
	prefix := ""
	if len(live) == 0 {
		if len(last) == 0 {
			return top, "no consumer seen yet: the newest format"
		}
		live = last
		prefix = fmt.Sprintf("no live consumer; as for the one seen last, %v ago: ", last[0].Idle.Round(time.Second))
	}
	var prev []string // the readers that lack v+1
	for v := top; v >= OldestFormat; v-- {
		var lacking []string
		for _, r := range live {
			if !slices.Contains(r.Reads, v) {
				lacking = append(lacking, r.label())
			}
		}
		switch {
		case len(lacking) > 0:
			prev = lacking
		case v < top:
			return v, prefix + fmt.Sprintf("%s cannot read %d", strings.Join(prev, ", "), v+1)
		case v < FormatVersion:
			return v, prefix + fmt.Sprintf("pinned at %d (mxq format pin)", pin)
		default:
			return v, prefix + "every live consumer reads it"
		}
	}
	return OldestFormat, prefix + fmt.Sprintf("no format every live consumer reads (%s cannot read %d): the oldest", strings.Join(prev, ", "), OldestFormat)
}

// QueuedFormats counts the messages queued, in the stream or waiting for
// a retry, by record format. It reads every entry, a thousand per
// command: for an operator during an upgrade, not for a hot path.
func (q *Queue) QueuedFormats(ctx context.Context) (map[int]int64, error) {
	out := map[int]int64{}
	start := "-"
	for {
		cctx, cancel := q.ctx(ctx)
		ms, err := q.rdb.XRangeN(cctx, q.key("stream"), start, "+", 1000).Result()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read the stream: %w", classify(err))
		}
		for _, m := range ms {
			out[entryVersion(m.Values)]++
		}
		if len(ms) < 1000 {
			break
		}
		start = "(" + ms[len(ms)-1].ID
	}
	cctx, cancel := q.ctx(ctx)
	ids, err := q.rdb.ZRange(cctx, q.key("retry"), 0, -1).Result()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read the retry set: %w", classify(err))
	}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 1000)]
		ids = ids[len(batch):]
		vs := make([]*redis.StringCmd, len(batch))
		cctx, cancel := q.ctx(ctx)
		_, err := q.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			for i, id := range batch {
				vs[i] = p.HGet(cctx, q.key("wait", id), "v")
			}
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read the retries: %w", classify(err))
		}
		for _, v := range vs {
			n, _ := strconv.Atoi(v.Val())
			out[n]++
		}
	}
	return out, nil
}
