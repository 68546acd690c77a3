package kernel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sipvigil/proxy/observe"
)

// Clock converts CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns,
// observe.Monotonic) to wall time with one offset, REALTIME - MONOTONIC.
//
// NTP slews MONOTONIC and REALTIME alike (clock_gettime(2)), so the offset
// only changes when REALTIME is stepped (settimeofday, clock_settime,
// adjtimex ADJ_SETOFFSET, a leap second). Between steps two measurements
// differ by measurement noise only: tens of ns on the vDSO, a few µs if the
// thread was preempted mid-measurement. Hence:
//
//   - a new measurement replaces the offset only when it differs by more
//     than both measurements' uncertainty plus AdoptThreshold (20 µs), so
//     conversions stay stable (one strictly monotone map) across routine
//     re-measurements; each replacement is counted by Adjustments;
//   - a replacement larger than StepThreshold (5 ms) is a clock step worth
//     alerting on and is counted by Steps. Smaller changes are adopted but
//     are below what NTP-synchronised hosts can align traces to anyway.
//
// Methods are safe for concurrent use.
type Clock struct {
	offset   atomic.Int64 // ns
	steps    atomic.Uint64
	adjusts  atomic.Uint64
	failures atomic.Uint64

	mu       sync.Mutex // serialises Measure
	measured bool
	gap      int64 // realtime gap of the adopted measurement

	// read is unix.ClockGettime in ns; swapped by tests to inject steps.
	read func(clock int32) (int64, error)
}

// Thresholds of Measure, see Clock.
const (
	AdoptThreshold = 20 * time.Microsecond
	StepThreshold  = 5 * time.Millisecond
	// maxGap rejects a whole measurement when even its tightest
	// REALTIME/MONOTONIC/REALTIME bracket took longer than this (the
	// thread kept being preempted): its uncertainty would hide steps.
	maxGap = time.Millisecond
	// rounds of bracketing per measurement; the tightest one wins.
	rounds = 16
)

// NewClock returns a Clock with its offset measured. Should that fail
// (only if clock_gettime fails), the offset is time.Now()-based and Run
// will measure again.
func NewClock() *Clock {
	c := &Clock{read: clockGettime}
	if _, err := c.Measure(); err != nil {
		// time.Now carries both clocks; its wall minus the runtime's
		// monotonic reading is a usable first guess.
		c.offset.Store(time.Now().UnixNano() - observe.Monotonic())
	}
	return c
}

func clockGettime(clock int32) (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, err
	}
	return ts.Nano(), nil
}

var errNoisy = errors.New("clock measurement too noisy: every realtime bracket exceeded 1ms")

// Measure reads REALTIME, MONOTONIC, REALTIME 16 times, keeps the tightest
// bracket and computes offset = midpoint(realtime) - monotonic. It returns
// the offset in force afterwards (which is the old one when the new
// measurement is within noise of it).
func (c *Clock) Measure() (time.Duration, error) {
	best, bestGap := int64(0), int64(-1)
	for range rounds {
		r1, err := c.read(unix.CLOCK_REALTIME)
		if err != nil {
			return c.fail(err)
		}
		m, err := c.read(unix.CLOCK_MONOTONIC)
		if err != nil {
			return c.fail(err)
		}
		r2, err := c.read(unix.CLOCK_REALTIME)
		if err != nil {
			return c.fail(err)
		}
		gap := r2 - r1
		if gap < 0 {
			continue // REALTIME stepped back inside the bracket
		}
		if bestGap < 0 || gap < bestGap {
			best, bestGap = r1+gap/2-m, gap
		}
	}
	if bestGap < 0 || bestGap > int64(maxGap) {
		return c.fail(errNoisy)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.measured {
		c.offset.Store(best)
		c.gap, c.measured = bestGap, true
		return time.Duration(best), nil
	}
	old := c.offset.Load()
	delta := best - old
	if delta < 0 {
		delta = -delta
	}
	if delta > int64(AdoptThreshold)+c.gap/2+bestGap/2 {
		c.offset.Store(best)
		c.gap = bestGap
		c.adjusts.Add(1)
		if delta > int64(StepThreshold) {
			c.steps.Add(1)
		}
	}
	return time.Duration(c.offset.Load()), nil
}

func (c *Clock) fail(err error) (time.Duration, error) {
	c.failures.Add(1)
	return time.Duration(c.offset.Load()), err
}

// Run re-measures every interval (10s when <= 0) until ctx is done.
// Failures are counted (Failures) and the old offset kept.
func (c *Clock) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.Measure() // counted in failures
		}
	}
}

// Wall converts a CLOCK_MONOTONIC time in ns to wall time.
func (c *Clock) Wall(mono int64) time.Time { return time.Unix(0, mono+c.offset.Load()) }

// Offset is the current REALTIME - MONOTONIC.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Steps counts offset changes larger than StepThreshold.
func (c *Clock) Steps() uint64 { return c.steps.Load() }

// Adjustments counts every offset replacement, steps included.
func (c *Clock) Adjustments() uint64 { return c.adjusts.Load() }

// Failures counts measurements that failed or were too noisy.
func (c *Clock) Failures() uint64 { return c.failures.Load() }
