package kernel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sipvigil/proxy/observe"
)

func TestClockOffsetMatchesRuntime(t *testing.T) {
	c := NewClock()
	want := time.Now().UnixNano() - observe.Monotonic()
	if d := time.Duration(int64(c.Offset()) - want).Abs(); d > time.Millisecond {
		t.Fatalf("offset %v differs from time.Now()-Monotonic by %v", c.Offset(), d)
	}
	mono := observe.Monotonic()
	if d := time.Since(c.Wall(mono)).Abs(); d > time.Millisecond {
		t.Fatalf("Wall(now) is %v away from time.Now()", d)
	}
	if w := c.Wall(mono + int64(time.Second)); w.Sub(c.Wall(mono)) != time.Second {
		t.Fatalf("Wall is not a translation: %v", w.Sub(c.Wall(mono)))
	}
	if c.Steps() != 0 || c.Failures() != 0 {
		t.Fatalf("steps %d failures %d", c.Steps(), c.Failures())
	}
}

// fakeSource is a REALTIME/MONOTONIC pair whose offset tests can step.
type fakeSource struct {
	mu     sync.Mutex
	mono   int64
	offset int64
	tick   int64 // advance per read
	err    error
}

func (f *fakeSource) read(clock int32) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.mono += f.tick
	if clock == unix.CLOCK_REALTIME {
		return f.mono + f.offset, nil
	}
	return f.mono, nil
}

func (f *fakeSource) shift(d time.Duration) {
	f.mu.Lock()
	f.offset += int64(d)
	f.mu.Unlock()
}

func fakeClock(f *fakeSource) *Clock {
	c := &Clock{read: f.read}
	if _, err := c.Measure(); err != nil {
		panic(err)
	}
	return c
}

func TestClockStepDetection(t *testing.T) {
	f := &fakeSource{mono: 1e12, offset: 1.7e18, tick: 30}
	c := fakeClock(f)
	if c.Offset() != time.Duration(1.7e18) {
		t.Fatalf("offset = %d", c.Offset())
	}
	// Noise-level change: the offset stays put.
	f.shift(2 * time.Microsecond)
	if off, err := c.Measure(); err != nil || off != time.Duration(1.7e18) || c.Adjustments() != 0 {
		t.Fatalf("noise adopted: %v %v adjustments %d", off, err, c.Adjustments())
	}
	// A real but small change is adopted, not a step.
	f.shift(time.Millisecond)
	if off, _ := c.Measure(); off != time.Duration(1.7e18)+time.Millisecond+2*time.Microsecond ||
		c.Adjustments() != 1 || c.Steps() != 0 {
		t.Fatalf("1ms: offset %d adjustments %d steps %d", off, c.Adjustments(), c.Steps())
	}
	// A step (either sign).
	f.shift(-time.Hour)
	c.Measure()
	if c.Steps() != 1 || c.Adjustments() != 2 {
		t.Fatalf("step: steps %d adjustments %d", c.Steps(), c.Adjustments())
	}
	if got, want := c.Wall(2e12), time.Unix(0, 2e12+1.7e18+int64(time.Millisecond+2*time.Microsecond-time.Hour)); !got.Equal(want) {
		t.Fatalf("Wall = %v, want %v", got, want)
	}
}

func TestClockMeasureFailures(t *testing.T) {
	f := &fakeSource{mono: 1e12, offset: 5e17, tick: 30}
	c := fakeClock(f)
	f.mu.Lock()
	f.tick = int64(2 * time.Millisecond) // every bracket too wide
	f.offset += int64(time.Hour)
	f.mu.Unlock()
	if off, err := c.Measure(); err == nil || off != time.Duration(5e17) {
		t.Fatalf("noisy measurement: %v %v", off, err)
	}
	f.mu.Lock()
	f.err = errors.New("boom")
	f.mu.Unlock()
	if _, err := c.Measure(); err == nil {
		t.Fatal("no error")
	}
	if c.Failures() != 2 || c.Steps() != 0 || c.Offset() != time.Duration(5e17) {
		t.Fatalf("failures %d steps %d offset %d", c.Failures(), c.Steps(), c.Offset())
	}
}

func TestClockRun(t *testing.T) {
	f := &fakeSource{mono: 1e12, offset: 5e17, tick: 30}
	c := fakeClock(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, time.Millisecond); close(done) }()
	f.shift(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for c.Steps() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if c.Steps() != 1 || c.Offset() != time.Duration(5e17)+time.Second {
		t.Fatalf("steps %d offset %d", c.Steps(), c.Offset())
	}
}
