package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ErrSpoolLost is the cause when the spooled beginning of a body is not
// in Redis any more: it expired, or a failover lost the part of it that
// had not reached a replica. The message cannot be completed from what
// the producer still holds; calling again does not help.
var ErrSpoolLost = errors.New("spooled body lost before the commit")

// Causes of a failure, as Cause names them (metric labels, log values).
const (
	CauseConnection = "connection" // refused, dropped, no sentinel reachable
	CauseTimeout    = "timeout"
	CauseLoading    = "loading"    // LOADING: the AOF is being read after a restart
	CauseReadOnly   = "readonly"   // READONLY: a replica, or a demoted primary
	CauseMasterDown = "masterdown" // MASTERDOWN: a replica lost its primary
	CauseNoReplicas = "noreplicas" // NOREPLICAS: min-replicas-to-write not met
	CauseReplicas   = "replicas"   // WAIT returned fewer replicas than required
	CauseBusy       = "busy"       // BUSY, TRYAGAIN, CLUSTERDOWN, MISCONF, UNBLOCKED
	CauseOOM        = "oom"        // maxmemory reached
	CauseSpoolLost  = "spool_lost" // see ErrSpoolLost
	CauseOther      = "other"
)

// Cause names what went wrong in err, one of the Cause constants.
func Cause(err error) string {
	var qe *Error
	if errors.As(err, &qe) && qe.Kind == OutOfMemory {
		return CauseOOM
	}
	switch {
	case errors.Is(err, ErrSpoolLost):
		return CauseSpoolLost
	case errors.Is(err, errReplicas):
		return CauseReplicas
	case redis.HasErrorPrefix(err, "LOADING"):
		return CauseLoading
	case redis.HasErrorPrefix(err, "READONLY"):
		return CauseReadOnly
	case redis.HasErrorPrefix(err, "MASTERDOWN"):
		return CauseMasterDown
	case redis.HasErrorPrefix(err, "NOREPLICAS"):
		return CauseNoReplicas
	case redis.HasErrorPrefix(err, "BUSY"), redis.HasErrorPrefix(err, "TRYAGAIN"),
		redis.HasErrorPrefix(err, "CLUSTERDOWN"), redis.HasErrorPrefix(err, "MISCONF"),
		redis.HasErrorPrefix(err, "UNBLOCKED"):
		return CauseBusy
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return CauseTimeout
	case connectionLost(err):
		return CauseConnection
	}
	return CauseOther
}

// Transient reports whether err is a failure of the queue that passes by
// itself within seconds: Redis restarting or loading its AOF, a failover
// or switch-over in progress, a replica that has not confirmed a write,
// a dropped connection, a timeout. The same call may then succeed when
// tried again, and Enqueue and Spool.Append may be tried again: they are
// idempotent. Running out of memory, a lost spool and errors that a
// second try would meet again are not transient.
func Transient(err error) bool {
	var qe *Error
	if !errors.As(err, &qe) || qe.Kind != Unavailable {
		return false
	}
	switch Cause(err) {
	case CauseOther, CauseSpoolLost, CauseOOM:
		return false
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connectionLost reports a connection that could not be made or broke:
// refused, reset, closed by the server (as Sentinel does to clients of a
// primary it demotes), or no sentinel reachable.
func connectionLost(err error) bool {
	var op *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.As(err, &op):
		return true
	}
	// go-redis says so only in words when no sentinel answers.
	return strings.Contains(err.Error(), "sentinels specified in configuration are unreachable")
}
