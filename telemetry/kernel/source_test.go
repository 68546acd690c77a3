package kernel

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"sipvigil/bpf"
	"sipvigil/proxy/observe"
)

// TestNextPollBacksOffWhenIdle checks the reader's wait: pollInterval
// while events flow, doubling up to idlePollInterval while the ring stays
// empty, then parked, and straight back to pollInterval on the first event.
func TestNextPollBacksOffWhenIdle(t *testing.T) {
	wait := pollInterval
	var idle []time.Duration
	for range 6 {
		wait = nextPoll(wait, 0)
		idle = append(idle, wait)
	}
	want := []time.Duration{4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
		32 * time.Millisecond, parkedPoll, parkedPoll}
	for i := range want {
		if idle[i] != want[i] {
			t.Fatalf("idle waits = %v, want %v", idle, want)
		}
	}
	for _, prev := range []time.Duration{idlePollInterval, parkedPoll} {
		if got := nextPoll(prev, 1); got != pollInterval {
			t.Fatalf("after an event (previous wait %v): %v, want %v", prev, got, pollInterval)
		}
	}
}

// fakeRing is a ring buffer the test fills; Read never blocks.
type fakeRing struct {
	mu     sync.Mutex
	events []bpf.Event
}

func (f *fakeRing) Read(rec *bpf.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return os.ErrDeadlineExceeded
	}
	*rec, f.events = f.events[0], f.events[1:]
	return nil
}

func (f *fakeRing) SetReadDeadline(time.Time) {}

func (f *fakeRing) push(ev bpf.Event) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
}

// TestSourceParksUntilProxyPacket checks that an idle reader parks, and
// that a packet the proxy reports wakes it to drain the ring at once: with
// parkedPoll at an hour nothing else can.
func TestSourceParksUntilProxyPacket(t *testing.T) {
	ring := &fakeRing{}
	m := NewMatcher(Config{}, nil, nil)
	s := newSource(nil, ring, m, NewClock(), nil, slog.New(slog.DiscardHandler))
	s.parkedPoll = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
		}
	}
	waitFor("reader parks on an empty ring", s.parked.Load)

	ring.push(bpf.Event{TsNs: 1, Direction: bpf.DirIngress})
	time.Sleep(20 * time.Millisecond)
	if got := m.Stats().KernelEvents; got != 0 {
		t.Fatalf("parked reader read %d events before any proxy packet", got)
	}
	s.Packet(observe.Packet{Dir: observe.In, Proto: observe.ProtoUDP})
	waitFor("the proxy's packet wakes the reader", func() bool { return m.Stats().KernelEvents == 1 })
	waitFor("reader parks again", s.parked.Load)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
