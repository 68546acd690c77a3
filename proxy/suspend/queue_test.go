package suspend

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// release is one call of the release callback, as seen by a recorder.
type release struct {
	ticket    Ticket
	at        time.Time
	goroutine uint64
}

// recorder is a release callback that remembers every call.
type recorder struct {
	mu   sync.Mutex
	got  []release
	more chan struct{} // signalled after every call
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1)} }

func (r *recorder) release(t Ticket) {
	now := time.Now()
	r.mu.Lock()
	r.got = append(r.got, release{ticket: t, at: now, goroutine: goroutineID()})
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []release {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until n releases were recorded; the timeout is a hang
// guard, not a latency assertion.
func (r *recorder) waitFor(t *testing.T, n int) []release {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("released %d tickets, want %d", len(r.snapshot()), n)
		}
	}
}

// goroutineID parses "goroutine N [" from the stack header; tests use it
// to check FIFO order per consumer.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// run starts q.Run and stops it when the test ends.
func run(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestReleaseFIFONotBeforeDue(t *testing.T) {
	for _, consumers := range []int{1, 4} {
		t.Run(strconv.Itoa(consumers), func(t *testing.T) {
			const n, delay = 200, 20 * time.Millisecond
			rec := newRecorder()
			q := New(Config{Name: "reinvite", Delay: delay, Consumers: consumers, Capacity: n}, rec.release)
			run(t, q)
			for i := range n {
				if !q.Enqueue(Ticket{Worker: i % 3, ID: uint64(i)}) {
					t.Fatalf("Enqueue %d refused", i)
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // spread the Dues
				}
			}
			got := rec.waitFor(t, n)

			lastPerGoroutine := map[uint64]uint64{}
			var ids []uint64
			for _, r := range got {
				tk := r.ticket
				if tk.Due.Before(tk.Enqueued.Add(delay)) {
					t.Errorf("ticket %d: Due %v < Enqueued+Delay", tk.ID, tk.Due.Sub(tk.Enqueued))
				}
				if r.at.Before(tk.Due) {
					t.Errorf("ticket %d released %v before Due", tk.ID, tk.Due.Sub(r.at))
				}
				if last, ok := lastPerGoroutine[r.goroutine]; ok && tk.ID < last {
					t.Errorf("consumer %d released %d after %d", r.goroutine, tk.ID, last)
				}
				lastPerGoroutine[r.goroutine] = tk.ID
				ids = append(ids, tk.ID)
			}
			if consumers == 1 && !slices.IsSorted(ids) {
				t.Errorf("release order %v, want FIFO", ids)
			}
			slices.Sort(ids)
			for i, id := range ids {
				if id != uint64(i) {
					t.Fatalf("released ids %v, want each of 0..%d once", ids, n-1)
				}
			}
			if len(lastPerGoroutine) > consumers {
				t.Errorf("%d goroutines called release, want <= %d", len(lastPerGoroutine), consumers)
			}
			if s := q.Stats(); s.Enqueued != n || s.Released != n || s.Depth != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestCapacityRefusesWithoutEvicting(t *testing.T) {
	rec := newRecorder()
	q := New(Config{Name: "q", Delay: time.Hour, Consumers: 1, Capacity: 10}, rec.release)
	for i := range 10 {
		if !q.Enqueue(Ticket{ID: uint64(i)}) {
			t.Fatalf("Enqueue %d refused below capacity", i)
		}
	}
	if q.Enqueue(Ticket{ID: 10}) {
		t.Fatal("11th Enqueue accepted at capacity 10")
	}
	s := q.Stats()
	if s.Overflowed != 1 || s.Enqueued != 10 || s.Depth != 10 || s.Capacity != 10 {
		t.Fatalf("stats %+v, want Overflowed 1, Enqueued 10, Depth 10", s)
	}
	if n := q.Flush(); n != 10 {
		t.Fatalf("Flush = %d, want 10", n)
	}
	for i, r := range rec.snapshot() {
		if r.ticket.ID != uint64(i) {
			t.Fatalf("entry %d is ticket %d: something was evicted or reordered", i, r.ticket.ID)
		}
	}
	if !q.Enqueue(Ticket{ID: 11}) {
		t.Fatal("Enqueue refused after Flush emptied the queue")
	}
}

func TestFlushReleasesAllInOrderAndWakesConsumer(t *testing.T) {
	rec := newRecorder()
	q := New(Config{Name: "q", Delay: time.Hour, Consumers: 1, Capacity: 16}, rec.release)
	run(t, q)
	for i := range 5 {
		q.Enqueue(Ticket{ID: uint64(i)})
	}
	time.Sleep(10 * time.Millisecond) // let the consumer fall asleep on the head (not required to pass)

	start := time.Now()
	if n := q.Flush(); n != 5 {
		t.Fatalf("Flush = %d, want 5", n)
	}
	got := rec.snapshot() // Flush releases on this goroutine, before returning
	if len(got) != 5 {
		t.Fatalf("%d released by Flush, want 5", len(got))
	}
	for i, r := range got {
		if r.ticket.ID != uint64(i) || r.at.Before(start) {
			t.Fatalf("release %d = ticket %d", i, r.ticket.ID)
		}
	}

	// The only consumer was asleep until the old head's Due, an hour away.
	// Flush must wake it, or this entry (due now) would wait that hour.
	q.Enqueue(Ticket{ID: 99, Due: time.Now()})
	if got := rec.waitFor(t, 6); got[5].ticket.ID != 99 {
		t.Fatalf("after Flush released %d, want 99", got[5].ticket.ID)
	}
	if s := q.Stats(); s.Flushed != 5 || s.Released != 6 || s.Depth != 0 {
		t.Fatalf("stats %+v", s)
	}
	if q.Flush() != 0 {
		t.Fatal("Flush of an empty queue released something")
	}
}

func TestFlushWithoutRun(t *testing.T) {
	rec := newRecorder()
	q := New(Config{Name: "q", Delay: time.Hour, Consumers: 1, Capacity: 4}, rec.release)
	q.Enqueue(Ticket{ID: 1})
	q.Enqueue(Ticket{ID: 2})
	if n := q.Flush(); n != 2 || len(rec.snapshot()) != 2 {
		t.Fatalf("Flush = %d, released %d", n, len(rec.snapshot()))
	}
}

func TestRunStopsOnCancelWithoutLeaking(t *testing.T) {
	before := runtime.NumGoroutine()
	rec := newRecorder()
	q := New(Config{Name: "q", Delay: time.Hour, Consumers: 4, Capacity: 16}, rec.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	for i := range 3 {
		q.Enqueue(Ticket{ID: uint64(i)})
	}
	time.Sleep(5 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := len(rec.snapshot()); n != 0 {
		t.Fatalf("%d entries released on cancel, want 0", n)
	}
	if d := q.Stats().Depth; d != 3 {
		t.Fatalf("Depth %d after cancel, want 3", d)
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Run returned, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunAgainAfterCancelResumes(t *testing.T) {
	const delay = 100 * time.Millisecond
	rec := newRecorder()
	q := New(Config{Name: "q", Delay: delay, Consumers: 2, Capacity: 16}, rec.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx)
	}()
	q.Enqueue(Ticket{ID: 1})
	q.Enqueue(Ticket{ID: 2})
	time.Sleep(time.Millisecond) // a consumer now sleeps on the head, holding the token
	cancel()
	<-done

	// The leader handed the token back on cancel, so a second Run releases.
	run(t, q)
	got := rec.waitFor(t, 2)
	for _, r := range got {
		if r.at.Before(r.ticket.Due) {
			t.Fatalf("ticket %d released before Due", r.ticket.ID)
		}
	}
}

func TestBlockedReleaseHoldsOnlyItsConsumer(t *testing.T) {
	unblock := make(chan struct{})
	rec := newRecorder()
	q := New(Config{Name: "q", Consumers: 2, Capacity: 4}, func(tk Ticket) {
		if tk.Worker == 0 {
			<-unblock // worker 0's resume channel is full
		}
		rec.release(tk)
	})
	run(t, q)
	defer close(unblock)
	q.Enqueue(Ticket{Worker: 0, ID: 1})
	q.Enqueue(Ticket{Worker: 1, ID: 2})
	if got := rec.waitFor(t, 1); got[0].ticket.ID != 2 {
		t.Fatalf("released %d, want 2 while 1 is blocked", got[0].ticket.ID)
	}
}

func TestEnqueueNeverBlocksOnConsumers(t *testing.T) {
	unblock := make(chan struct{})
	q := New(Config{Name: "q", Consumers: 1, Capacity: 4}, func(Ticket) { <-unblock })
	run(t, q)
	defer close(unblock)
	accepted := 0
	for i := range 10 {
		if q.Enqueue(Ticket{ID: uint64(i)}) {
			accepted++
		}
	}
	// One ticket may be in the blocked release, Capacity wait.
	if accepted < 4 || accepted > 5 {
		t.Fatalf("accepted %d of 10 at capacity 4 with a blocked consumer", accepted)
	}
	if s := q.Stats(); s.Overflowed != uint64(10-accepted) {
		t.Fatalf("Overflowed %d, want %d", s.Overflowed, 10-accepted)
	}
}

func TestEnqueueKeepsDueOrder(t *testing.T) {
	const delay = 10 * time.Millisecond
	var got []Ticket
	q := New(Config{Name: "q", Delay: delay, Consumers: 1, Capacity: 4}, func(t Ticket) { got = append(got, t) })
	now := time.Now()
	q.Enqueue(Ticket{ID: 1, Enqueued: now})
	q.Enqueue(Ticket{ID: 2, Enqueued: now.Add(-time.Millisecond)}) // a worker with an older clock reading
	q.Enqueue(Ticket{ID: 3, Enqueued: now, Due: now.Add(time.Hour)})
	q.Flush()
	if !got[0].Due.Equal(now.Add(delay)) {
		t.Errorf("Due %v, want Enqueued+Delay", got[0].Due.Sub(now))
	}
	if !got[1].Due.Equal(got[0].Due) {
		t.Errorf("stale ticket Due %v, want raised to the previous Due %v", got[1].Due.Sub(now), got[0].Due.Sub(now))
	}
	if !got[2].Due.Equal(now.Add(time.Hour)) {
		t.Errorf("caller's Due changed to %v", got[2].Due.Sub(now))
	}
}

func TestStatsCounters(t *testing.T) {
	q := New(Config{Name: "reinvite", Delay: 10 * time.Millisecond, Consumers: 1, Capacity: 2}, func(Ticket) {})
	q.Enqueue(Ticket{ID: 1})
	q.Enqueue(Ticket{ID: 2})
	q.Enqueue(Ticket{ID: 3})
	q.CountExpired()
	q.CountCancelled()
	q.CountCancelled()

	base := time.Now()
	tk := Ticket{Enqueued: base, Due: base.Add(10 * time.Millisecond)}
	q.ObserveResume(tk, base.Add(12*time.Millisecond)) // 2 ms late
	q.ObserveResume(tk, base.Add(5*time.Millisecond))  // early (Flush): lateness 0

	s := q.Stats()
	if s.Name != "reinvite" || s.Capacity != 2 || s.Depth != 2 || s.Enqueued != 2 || s.Overflowed != 1 ||
		s.Expired != 1 || s.Cancelled != 2 || s.Resumed != 2 || s.Released != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Wait.Count != 2 || s.Lateness.Count != 2 {
		t.Fatalf("histogram counts wait %d lateness %d, want 2", s.Wait.Count, s.Lateness.Count)
	}
	if got := s.Lateness.Max(); got < 0.0019 || got > 0.0021 {
		t.Errorf("lateness max %v, want 0.002", got)
	}
	if s.Lateness.Counts[0] != 1 { // the early resume, clamped to 0
		t.Errorf("lateness buckets %v, want one 0 in the first", s.Lateness.Counts)
	}
	if got := s.Wait.Sum; got < 0.0169 || got > 0.0171 {
		t.Errorf("wait sum %v, want 0.017", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	noop := func(Ticket) {}
	for name, f := range map[string]func(){
		"consumers": func() { New(Config{Consumers: 0, Capacity: 1}, noop) },
		"capacity":  func() { New(Config{Consumers: 1, Capacity: 0}, noop) },
		"delay":     func() { New(Config{Consumers: 1, Capacity: 1, Delay: -1}, noop) },
		"release":   func() { New(Config{Consumers: 1, Capacity: 1}, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("New did not panic")
				}
			}()
			f()
		})
	}
}
