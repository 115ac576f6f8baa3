package queue_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	_, q, rdb := benchQueue(b)
	ctx := context.Background()
	body := []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 10<<10/80))
	b.Run("set", func(b *testing.B) {
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

// BenchmarkSpool measures what Redis's one thread spends to store a big
// body, in CPU milliseconds of the redis-server process per MiB stored
// (redis-ms/MiB, from /proc, the AOF's writes and fsyncs included), and
// what the writing side spends (client-ms/MiB: this process, go-redis's
// encoding and the spool's SHA-256). Every op stores one 8 MiB body
// under a key of its own, two writers at a time as mxd's spool_writers
// default lets them, against a Redis with appendfsync always.
//
//   - spool: queue.Spool.Append as mxd calls it, 256 KiB at a time;
//     spool-deleted drops each spool after it is written (the memory
//     reused, as under a consumer that keeps up).
//   - multi/CHUNKxN: the spool's transaction (RPUSH of N chunks, LTRIM,
//     PEXPIRE) with other chunk sizes: what the chunk size costs.
//   - set/SIZE: plain SETs of SIZE bytes into new keys, the reference:
//     what Redis needs to store the same bytes with no list and no
//     transaction (redis-benchmark -t set -d SIZE -r 1000000000 -c 2);
//     set/SIZE-one-key, SETs into one key (redis-benchmark without -r).
//
// redis-bytes/B is Redis's used_memory (what maxmemory counts) per byte
// stored: a chunk of exactly 64 KiB shows the 80 KiB size class it
// takes.
//
// go test -run '^$' -bench Spool -benchtime 40x ./queue/
func BenchmarkSpool(b *testing.B) {
	r, q, rdb := benchQueue(b)
	ctx := context.Background()
	const bodySize = 8 << 20
	data := []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", bodySize/80+1))[:bodySize]
	type store func(key string) error
	multi := func(chunk, per int) store {
		return func(key string) error {
			var n int64
			for off := 0; off < len(data); off += chunk * per {
				args := make([]any, 0, per)
				for i := off; i < min(off+chunk*per, len(data)); i += chunk {
					args = append(args, data[i:min(i+chunk, len(data))])
				}
				n += int64(len(args))
				_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.RPush(ctx, key, args...)
					p.LTrim(ctx, key, 0, n-1)
					p.PExpire(ctx, key, time.Minute)
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
	}
	// set stores the body in SETs of size bytes, into a key of their
	// own each, or all into one key, whose memory the next SET reuses.
	set := func(size int, oneKey bool) store {
		return func(key string) error {
			for off := 0; off < len(data); off += size {
				k := fmt.Sprint(key, ":", off)
				if oneKey {
					k = "one"
				}
				if err := rdb.Set(ctx, k, data[off:min(off+size, len(data))], 0).Err(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// spool appends the body as mxd does, 256 KiB at a time; deleted,
	// the spool is dropped at once, so that the next body reuses its
	// memory, as when a consumer keeps the queue short.
	spool := func(deleted bool) store {
		return func(key string) error {
			sp := q.NewSpool(key, time.Minute)
			for off := 0; off < len(data); off += 256 << 10 {
				if err := sp.Append(ctx, data[off:min(off+256<<10, len(data))]); err != nil {
					return err
				}
			}
			if deleted {
				return sp.Abort(ctx)
			}
			return nil
		}
	}
	for _, v := range []struct {
		name string
		do   store
	}{
		{"spool", spool(false)},
		{"spool-deleted", spool(true)},
		{"multi/16KiBx16", multi(16<<10, 16)},
		{"multi/64KiBx4", multi(64<<10, 4)},
		{"multi/65520x4", multi(65520, 4)},
		{"multi/256KiBx1", multi(256<<10, 1)},
		{"multi/1MiBx1", multi(1<<20, 1)},
		{"set/64KiB", set(64<<10, false)},
		{"set/256KiB", set(256<<10, false)},
		{"set/256KiB-one-key", set(256<<10, true)},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(bodySize)
			var next atomic.Int64
			cpu0, self0, mem0 := procCPU(b, r.Pid()), selfCPU(b), usedMemory(b, rdb)
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for range 2 {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if err := v.do(fmt.Sprintf("%s:%d", v.name, i)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			mib := float64(b.N) * bodySize / (1 << 20)
			b.ReportMetric((procCPU(b, r.Pid())-cpu0).Seconds()*1000/mib, "redis-ms/MiB")
			b.ReportMetric((selfCPU(b)-self0).Seconds()*1000/mib, "client-ms/MiB")
			b.ReportMetric(float64(usedMemory(b, rdb)-mem0)/(float64(b.N)*bodySize), "redis-bytes/B")
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchQueue starts a Redis as the queue needs it and opens the queue
// and a plain client on it, closed when the benchmark ends.
func benchQueue(b *testing.B) (*queuetest.Redis, *queue.Queue, *redis.Client) {
	r := queuetest.StartRedis(b)
	q, err := queue.Open(r.URL(), queue.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	b.Cleanup(func() { rdb.Close() })
	return r, q, rdb
}

// usedMemory is Redis's used_memory: what its allocator handed out,
// rounded up to the allocator's size classes, as maxmemory counts it.
func usedMemory(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.InfoMap(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// procCPU is the user and system CPU time pid has used.
func procCPU(b *testing.B, pid int) time.Duration {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	const userHZ = 100 // clock ticks per second on Linux
	return time.Duration(utime+stime) * time.Second / userHZ
}

// selfCPU is the user and system CPU time of this process.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
