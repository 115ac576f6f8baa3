package queue

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 30 * time.Second},
		{2, 0.5, time.Minute},
		{3, 0.5, 2 * time.Minute},
		{7, 0.5, 30 * time.Minute}, // 32m capped
		{40, 0.5, 30 * time.Minute},
		{1, 0, 27 * time.Second},
		{1, 1, 33 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(30*time.Second, 30*time.Minute, tt.n, tt.r); got != tt.want {
			t.Errorf("backoff(30s, 30m, %d, %v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}
