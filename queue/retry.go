package queue

import "time"

// RetryPause is how long to wait after the try-th (0-based) failed try
// of an operation that failed Transient before trying again: 50 ms at
// first, since a dropped connection or a Redis restart on the same host
// passes in well under a second, doubling to at most a second, so that
// the end of a failover is noticed soon. mxd's sessions and listd's
// writes and reads pause so while they ride through an outage.
func RetryPause(try int) time.Duration {
	const first, most = 50 * time.Millisecond, time.Second
	return min(first<<min(try, 10), most)
}
