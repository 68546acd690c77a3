package suspend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Ticket identifies one suspended transaction. The queue never looks inside
// beyond the times; Worker and ID let the release callback route it home.
type Ticket struct {
	Worker   int       // index of the owning worker
	ID       uint64    // worker-local suspension id
	Enqueued time.Time // when it was suspended
	Due      time.Time // Enqueued + Delay: when it must be released
}

// Config describes one named queue.
type Config struct {
	Name string
	// Delay holds each entry this long (0 = release as soon as a consumer
	// picks it).
	Delay time.Duration
	// Consumers is the number of goroutines that release entries (>= 1).
	// Like Kamailio's rtimer processes, except that they only hand tickets
	// back and never run SIP logic; more than one only helps when release
	// can block on a slow worker.
	Consumers int
	// Capacity is the most entries that may wait (>= 1).
	Capacity int
}

// Queue holds tickets for Config.Delay and hands each to the release
// callback when it falls due. All methods are safe for concurrent use.
type Queue struct {
	cfg     Config
	release func(Ticket)
	// fineWindow is the last stretch before Due slept with fineSleep
	// instead of the timer; a field so tests can compare both.
	fineWindow time.Duration

	mu   sync.Mutex
	ring []Ticket // Capacity slots
	head int      // index of the oldest entry
	n    int      // entries waiting

	// lead is the leader token (see doc.go): present, in the channel or in
	// a consumer's hands, whenever n > 0.
	lead chan struct{}
	// kick wakes a leader sleeping on an entry that Flush took away.
	kick chan struct{}

	enqueued, released, overflowed atomic.Uint64
	expired, cancelled, resumed    atomic.Uint64
	flushed                        atomic.Uint64
	wait, lateness                 *Histogram
}

// New builds a queue. release is called by a consumer goroutine (or by
// Flush's caller) for each due ticket, in FIFO order per goroutine. It may
// block: the worker's resume channel pushes back on the consumers, never on
// the SIP readers, because Enqueue does not wait for consumers.
//
// An invalid Config or a nil release is a programming error (the config
// package validates operator input) and panics.
func New(cfg Config, release func(Ticket)) *Queue {
	switch {
	case release == nil:
		panic("suspend: New with nil release")
	case cfg.Consumers < 1:
		panic(fmt.Sprintf("suspend: queue %q: Consumers %d < 1", cfg.Name, cfg.Consumers))
	case cfg.Capacity < 1:
		panic(fmt.Sprintf("suspend: queue %q: Capacity %d < 1", cfg.Name, cfg.Capacity))
	case cfg.Delay < 0:
		panic(fmt.Sprintf("suspend: queue %q: negative Delay %v", cfg.Name, cfg.Delay))
	}
	return &Queue{
		cfg:        cfg,
		release:    release,
		fineWindow: fineWindow,
		ring:       make([]Ticket, cfg.Capacity),
		lead:       make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		wait:       NewHistogram(nil),
		lateness:   NewHistogram(nil),
	}
}

// Name returns Config.Name.
func (q *Queue) Name() string { return q.cfg.Name }

// Delay returns Config.Delay.
func (q *Queue) Delay() time.Duration { return q.cfg.Delay }

// Run starts Config.Consumers consumers and blocks until ctx is done and
// every consumer has returned. A consumer inside release finishes that call
// first, so Run returns late if release is blocked. Entries still waiting
// are NOT released: call Flush first for a graceful shutdown, or Run again
// to resume.
func (q *Queue) Run(ctx context.Context) {
	q.mu.Lock()
	if q.n > 0 {
		q.passLead() // a previous Run may have exited with the token held
	}
	q.mu.Unlock()

	var wg sync.WaitGroup
	for range q.cfg.Consumers {
		wg.Go(func() { q.consume(ctx) })
	}
	wg.Wait()
}

// Enqueue adds t without blocking. A zero t.Enqueued is set to now, a zero
// t.Due to Enqueued + Delay. A Due earlier than the previous entry's is
// raised to it, so that FIFO order stays Due order (callers stamping their
// own clock may be a little behind one another); a ticket is therefore
// never released before the Due it was given.
//
// Enqueue returns false, and counts an overflow, when Capacity entries are
// waiting. It never evicts anything.
func (q *Queue) Enqueue(t Ticket) bool {
	if t.Enqueued.IsZero() {
		t.Enqueued = time.Now()
	}
	if t.Due.IsZero() {
		t.Due = t.Enqueued.Add(q.cfg.Delay)
	}
	q.mu.Lock()
	if q.n == len(q.ring) {
		q.mu.Unlock()
		q.overflowed.Add(1)
		return false
	}
	if q.n > 0 {
		if tail := &q.ring[q.index(q.n-1)]; t.Due.Before(tail.Due) {
			t.Due = tail.Due
		}
	}
	q.ring[q.index(q.n)] = t
	q.n++
	if q.n == 1 {
		q.passLead()
	}
	q.mu.Unlock()
	q.enqueued.Add(1)
	return true
}

// Flush releases every waiting entry now, on the caller's goroutine, in
// FIFO order, regardless of Due, and returns how many it released. It is
// meant for SIGTERM with shutdown policy "release", and is safe to call
// concurrently with Run and Enqueue (and works without Run). Entries
// enqueued while Flush is releasing wait for their Due as usual.
func (q *Queue) Flush() int {
	q.mu.Lock()
	batch := make([]Ticket, q.n)
	for i := range batch {
		slot := &q.ring[q.index(i)]
		batch[i] = *slot
		*slot = Ticket{}
	}
	q.head, q.n = 0, 0
	q.mu.Unlock()
	if len(batch) == 0 {
		return 0
	}
	// The leader may be asleep on an entry we just took; wake it so that
	// it re-reads the head (and gives up the token if the ring is empty).
	select {
	case q.kick <- struct{}{}:
	default:
	}
	q.flushed.Add(uint64(len(batch)))
	for _, t := range batch {
		q.released.Add(1)
		q.release(t)
	}
	return len(batch)
}

// ObserveResume records that the worker resumed t at now: the wait
// (now - Enqueued) and the lateness (now - Due, at least 0), and counts a
// resume.
func (q *Queue) ObserveResume(t Ticket, now time.Time) {
	q.resumed.Add(1)
	q.wait.Observe(now.Sub(t.Enqueued).Seconds())
	q.lateness.Observe(max(now.Sub(t.Due), 0).Seconds())
}

// CountExpired counts a suspended transaction that hit max_wait before its
// release (the worker answered 408).
func (q *Queue) CountExpired() { q.expired.Add(1) }

// CountCancelled counts a suspended transaction that was CANCELled, or
// answered otherwise, before its release; the worker discards its ticket
// when it comes back.
func (q *Queue) CountCancelled() { q.cancelled.Add(1) }

// Stats is a snapshot of a queue's gauges and counters.
type Stats struct {
	Name            string
	Depth, Capacity int
	Enqueued        uint64 // accepted by Enqueue
	Released        uint64 // handed to release (including by Flush)
	Overflowed      uint64 // refused by Enqueue because the queue was full
	Expired         uint64 // CountExpired
	Cancelled       uint64 // CountCancelled
	Resumed         uint64 // ObserveResume
	Flushed         uint64 // released by Flush, a subset of Released
	Wait, Lateness  HistogramSnapshot
}

// Stats returns a snapshot; safe from any goroutine. Counters are read one
// by one, so a snapshot taken under load may be off by the few operations
// in flight (for example Released may lag Enqueued - Depth).
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	depth := q.n
	q.mu.Unlock()
	return Stats{
		Name:       q.cfg.Name,
		Depth:      depth,
		Capacity:   q.cfg.Capacity,
		Enqueued:   q.enqueued.Load(),
		Released:   q.released.Load(),
		Overflowed: q.overflowed.Load(),
		Expired:    q.expired.Load(),
		Cancelled:  q.cancelled.Load(),
		Resumed:    q.resumed.Load(),
		Flushed:    q.flushed.Load(),
		Wait:       q.wait.Snapshot(),
		Lateness:   q.lateness.Snapshot(),
	}
}

// consume is one consumer: wait for the leader token, lead until an entry
// is due and popped, then release it. The token is passed on before
// release, so a release blocked on a slow worker holds up only this
// consumer.
func (q *Queue) consume(ctx context.Context) {
	// One timer for the consumer's whole life, re-armed with Reset (Go
	// 1.23+ timers: Reset and Stop leave no stale tick in the channel).
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.lead:
		}
		t, ok := q.awaitHead(ctx, timer)
		if !ok {
			if ctx.Err() != nil {
				return
			}
			continue // the ring emptied and the token was dropped
		}
		q.released.Add(1)
		q.release(t)
	}
}

// awaitHead is run by the token holder: it sleeps until the head entry is
// due and pops it, passing the token on when more entries wait. It returns
// false, dropping the token, when the ring is empty, and returns false,
// handing the token back, when ctx is done.
func (q *Queue) awaitHead(ctx context.Context, timer *time.Timer) (Ticket, bool) {
	for {
		q.mu.Lock()
		if ctx.Err() != nil {
			if q.n > 0 {
				q.passLead() // for a later Run
			}
			q.mu.Unlock()
			return Ticket{}, false
		}
		if q.n == 0 {
			q.mu.Unlock()
			return Ticket{}, false
		}
		slot := &q.ring[q.head]
		wait := time.Until(slot.Due)
		if wait <= 0 {
			t := *slot
			*slot = Ticket{}
			q.head = q.index(1)
			q.n--
			if q.n > 0 {
				q.passLead()
			}
			q.mu.Unlock()
			return t, true
		}
		q.mu.Unlock()
		if wait <= q.fineWindow {
			fineSleep(wait) // then re-read the head: Flush may have taken it
			continue
		}
		// Entries behind the head are due no earlier (FIFO == Due order),
		// so the head's Due is the only deadline worth a timer.
		timer.Reset(wait - q.fineWindow)
		select {
		case <-timer.C:
		case <-q.kick:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
		}
	}
}

// passLead puts the leader token in the channel unless it is already
// there; never blocks.
func (q *Queue) passLead() {
	select {
	case q.lead <- struct{}{}:
	default:
	}
}

// index maps the i-th waiting entry to its ring slot. Caller holds q.mu.
func (q *Queue) index(i int) int {
	i += q.head
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	return i
}
