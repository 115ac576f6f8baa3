package queue

import (
	"context"
	"encoding/json"
	"time"
)

// A consumer announces the record formats it reads in
// {NAME}:consumers:GROUP, under its name, before its first read and then
// every announceEvery while it fetches, so that producers write only what
// it reads (see Readers and FormatChooser).
const announceEvery = time.Second

// announce writes c's announcement when the last one is announceEvery
// old. It is written before the read that makes c a member of its
// group: a producer never sees c in the group without it. A failure is
// left to the next Fetch; until then a producer sees what it saw before.
func (c *Consumer) announce(ctx context.Context) {
	now := c.opt.Now()
	c.mu.Lock()
	due := now.Sub(c.announced) >= announceEvery
	c.mu.Unlock()
	if !due {
		return
	}
	b, _ := json.Marshal(announcement{Program: c.opt.Program, Reads: Formats(), Seen: now.UTC()})
	ctx, cancel := c.q.ctx(ctx)
	defer cancel()
	if c.q.rdb.HSet(ctx, c.q.key("consumers", c.opt.Group), c.opt.Name, b).Err() != nil {
		return
	}
	c.mu.Lock()
	c.announced = now
	c.mu.Unlock()
}

// forgetAnnouncements removes the announcements of consumers that are
// not in the group and have not announced for ForgetIdle.
func (c *Consumer) forgetAnnouncements(ctx context.Context, members map[string]bool) {
	key := c.q.key("consumers", c.opt.Group)
	m, err := c.q.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return
	}
	now := c.opt.Now()
	for name, raw := range m {
		var a announcement
		if members[name] || name == c.opt.Name {
			continue
		}
		if json.Unmarshal([]byte(raw), &a) != nil || now.Sub(a.Seen) > c.opt.ForgetIdle {
			c.q.rdb.HDel(ctx, key, name)
		}
	}
}
