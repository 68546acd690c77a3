package kernel

import (
	"testing"
	"time"
)

// TestNextPollBacksOffWhenIdle checks the reader's wait: pollInterval
// while events flow, doubling up to idlePollInterval while the ring stays
// empty, and straight back to pollInterval on the first event.
func TestNextPollBacksOffWhenIdle(t *testing.T) {
	wait := pollInterval
	var idle []time.Duration
	for range 6 {
		wait = nextPoll(wait, 0)
		idle = append(idle, wait)
	}
	want := []time.Duration{4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
		32 * time.Millisecond, 32 * time.Millisecond, 32 * time.Millisecond}
	for i := range want {
		if idle[i] != want[i] {
			t.Fatalf("idle waits = %v, want %v", idle, want)
		}
	}
	if got := nextPoll(idlePollInterval, 1); got != pollInterval {
		t.Fatalf("after an event: %v, want %v", got, pollInterval)
	}
}
