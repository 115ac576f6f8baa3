package redisha

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replication is the state of the Redis of a Client as its primary
// reports it (INFO replication), and, when the Client was opened over
// Sentinel, as each sentinel sees it.
type Replication struct {
	// Primary is the server the Client writes to: the one most sentinels
	// name, or the server of the URL.
	Primary string `json:"primary"`
	// Role is that server's own word: "master", or "slave" when the URL
	// names a replica.
	Role string `json:"role"`
	// Offset is its replication offset (master_repl_offset): bytes of
	// writes it has passed to its replicas since its history began.
	Offset   int64     `json:"offset"`
	Replicas []Replica `json:"replicas"`
	// Sentinels is each sentinel of the URL, in its order; empty for a
	// single server.
	Sentinels []SentinelView `json:"sentinels,omitempty"`
}

// Replica is one replica as the primary sees it.
type Replica struct {
	Addr string `json:"addr"`
	// State is online once the replica has the data set and follows the
	// stream of writes; wait_bgsave and send_bulk while it is copied.
	State string `json:"state"`
	// Offset is the last offset the replica acknowledged.
	Offset int64 `json:"offset"`
	// Behind is the primary's offset minus Offset: bytes of writes the
	// replica had not acknowledged. Replicas acknowledge once a second,
	// so a few hundred bytes under load are normal.
	Behind int64 `json:"behind_bytes"`
	// LagSeconds is the time since the replica's last acknowledgement
	// (INFO's lag); above min-replicas-max-lag it no longer counts for
	// min-replicas-to-write.
	LagSeconds int64 `json:"lag_seconds"`
}

// SentinelView is what one sentinel says about the primary.
type SentinelView struct {
	Addr string `json:"addr"`
	// Err is why the sentinel did not answer; the rest is then empty.
	Err string `json:"error,omitempty"`
	// Primary is the address it names as primary.
	Primary string `json:"primary,omitempty"`
	// Flags is its view of the primary: "master", plus s_down (it cannot
	// reach it), o_down (enough sentinels agree), failover_in_progress.
	Flags string `json:"flags,omitempty"`
	// Quorum is how many sentinels must find the primary down before a
	// failover starts.
	Quorum int `json:"quorum,omitempty"`
	// Replicas and Sentinels are how many replicas and other sentinels
	// it knows of.
	Replicas  int `json:"replicas"`
	Sentinels int `json:"other_sentinels"`
}

// Replication returns the state of replication: the primary, its
// replicas and how far behind they are, and each sentinel's view.
func (c *Client) Replication(ctx context.Context) (*Replication, error) {
	r := &Replication{Primary: c.rdb.Options().Addr}
	if c.sentinels != nil {
		r.Sentinels = c.sentinels.views(ctx, c.timeout)
		r.Primary = namedPrimary(r.Sentinels)
	}
	ictx, cancel := c.ctx(ctx)
	defer cancel()
	info, err := serverInfo(ictx, c.rdb)
	if err != nil {
		return nil, fmt.Errorf("info replication: %w", err)
	}
	r.Role, r.Offset = info["role"], InfoInt(info, "master_repl_offset")
	r.Replicas = replicasOf(info, r.Offset)
	return r, nil
}

// views asks every sentinel at once for its view of the primary.
func (s *sentinelSet) views(ctx context.Context, timeout time.Duration) []SentinelView {
	out := make([]SentinelView, len(s.Addrs))
	var wg sync.WaitGroup
	for i, addr := range s.Addrs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c := s.sentinel(addr)
			defer c.Close()
			out[i] = SentinelView{Addr: addr}
			m, err := c.Master(ctx, s.Master).Result()
			if err != nil {
				out[i].Err = err.Error()
				return
			}
			out[i].Primary = net.JoinHostPort(m["ip"], m["port"])
			out[i].Flags = m["flags"]
			out[i].Quorum, _ = strconv.Atoi(m["quorum"])
			out[i].Replicas, _ = strconv.Atoi(m["num-slaves"])
			out[i].Sentinels, _ = strconv.Atoi(m["num-other-sentinels"])
		})
	}
	wg.Wait()
	return out
}

// namedPrimary is the address most of the sentinels name, "" if none
// answered.
func namedPrimary(views []SentinelView) string {
	count := make(map[string]int)
	best := ""
	for _, v := range views {
		if v.Primary == "" {
			continue
		}
		count[v.Primary]++
		if count[v.Primary] > count[best] {
			best = v.Primary
		}
	}
	return best
}

// ParseInfo reads the "key:value" lines of an INFO reply.
func ParseInfo(raw string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(raw, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// InfoInt is the number at key of a ParseInfo map, 0 when there is none.
func InfoInt(info map[string]string, key string) int64 {
	n, _ := strconv.ParseInt(info[key], 10, 64)
	return n
}

// InfoFloat is the decimal number at key of a ParseInfo map (INFO cpu's
// seconds), 0 when there is none.
func InfoFloat(info map[string]string, key string) float64 {
	f, _ := strconv.ParseFloat(info[key], 64)
	return f
}

// replicasOf reads the slaveN lines of a primary's INFO replication
// ("ip=…,port=…,state=online,offset=…,lag=0"), in their order.
func replicasOf(info map[string]string, primaryOffset int64) []Replica {
	out := []Replica{}
	for i := 0; ; i++ {
		line, ok := info["slave"+strconv.Itoa(i)]
		if !ok {
			break
		}
		f := make(map[string]string)
		for _, kv := range strings.Split(line, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		off, _ := strconv.ParseInt(f["offset"], 10, 64)
		lag, _ := strconv.ParseInt(f["lag"], 10, 64)
		out = append(out, Replica{Addr: net.JoinHostPort(f["ip"], f["port"]), State: f["state"],
			Offset: off, Behind: primaryOffset - off, LagSeconds: lag})
	}
	slices.SortStableFunc(out, func(a, b Replica) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// serverInfo is INFO replication of one server, read directly.
func serverInfo(ctx context.Context, c *redis.Client) (map[string]string, error) {
	raw, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	return ParseInfo(raw), nil
}
