package queue_test

import (
	"testing"
	"time"

	"mxq/queue"
)

func TestRetryPause(t *testing.T) {
	want := []time.Duration{50, 100, 200, 400, 800, 1000, 1000}
	for try, w := range want {
		if got := queue.RetryPause(try); got != w*time.Millisecond {
			t.Errorf("RetryPause(%d) = %v, want %v", try, got, w*time.Millisecond)
		}
	}
	if got := queue.RetryPause(1000); got != time.Second {
		t.Errorf("RetryPause(1000) = %v, want 1s", got)
	}
}
