package suspend

import (
	"context"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEnqueueRelease is the queue's share of a suspend/resume with
// Delay 0: Enqueue on the benchmark goroutine, release on a consumer,
// pipelined (the producer does not wait for each release).
func BenchmarkEnqueueRelease(b *testing.B) {
	var released atomic.Int64
	q := New(Config{Name: "bench", Consumers: 1, Capacity: 4096}, func(Ticket) { released.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	b.ReportAllocs()
	var sent int64
	for b.Loop() {
		for !q.Enqueue(Ticket{ID: uint64(sent)}) {
			runtime.Gosched() // full: let the consumer catch up
		}
		sent++
	}
	for released.Load() < sent {
		runtime.Gosched()
	}
}

// BenchmarkEnqueueReleaseRoundTrip waits for each release before the next
// Enqueue: the latency of one suspend/resume through an idle queue with
// Delay 0 (a consumer wake-up included).
func BenchmarkEnqueueReleaseRoundTrip(b *testing.B) {
	back := make(chan Ticket, 1)
	q := New(Config{Name: "bench", Consumers: 1, Capacity: 16}, func(t Ticket) { back <- t })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	b.ReportAllocs()
	var id uint64
	for b.Loop() {
		q.Enqueue(Ticket{ID: id})
		<-back
		id++
	}
}

// latencyReport is what measureLateness found.
type latencyReport struct {
	sent, refused     int
	p50, p99, max     time.Duration // from Due to release() being called, exact
	resumeP50         float64       // seconds, from Due to the simulated worker's ObserveResume (histogram estimate)
	resumeP99, resMax float64
}

// measureLateness enqueues rate tickets per second for d with the given
// delay, like the worker suspending re-INVITEs, and measures how late the
// consumers call release. A goroutine standing in for the worker drains a
// resume channel and calls ObserveResume, to show the extra hop too.
//
// window overrides the queue's fineWindow (-1 keeps the platform default).
func measureLateness(tb testing.TB, consumers, rate int, d, delay, window time.Duration) latencyReport {
	total := int(int64(rate) * int64(d) / int64(time.Second))
	late := make([]time.Duration, total)
	resume := make(chan Ticket, 1024)
	q := New(Config{Name: "lateness", Delay: delay, Consumers: consumers, Capacity: 4 * total}, func(t Ticket) {
		late[t.ID] = time.Since(t.Due)
		resume <- t
	})
	if window >= 0 {
		q.fineWindow = window
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(ctx) })
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		for range total {
			t := <-resume
			q.ObserveResume(t, time.Now())
		}
	}()

	var rep latencyReport
	ticker := time.NewTicker(time.Millisecond)
	start := time.Now()
	for rep.sent < total {
		<-ticker.C
		// Catch up on missed ticks so the rate holds on a loaded box.
		target := min(int(int64(time.Since(start))*int64(rate)/int64(time.Second)), total)
		for ; rep.sent < target; rep.sent++ {
			if !q.Enqueue(Ticket{ID: uint64(rep.sent)}) {
				rep.refused++
			}
		}
	}
	ticker.Stop()
	select {
	case <-workerDone:
	case <-time.After(10 * time.Second):
		tb.Fatalf("only %d of %d tickets resumed", q.Stats().Resumed, total)
	}
	cancel()
	wg.Wait()

	slices.Sort(late)
	rep.p50 = late[total/2]
	rep.p99 = late[total*99/100]
	rep.max = late[total-1]
	s := q.Stats().Lateness
	rep.resumeP50, rep.resumeP99, rep.resMax = s.Quantile(0.5), s.Quantile(0.99), s.Max()
	return rep
}

// latenessCases: the shipped configuration with 1 and 4 consumers, and the
// timer alone (no final kernel sleep) to show why the kernel sleep exists.
var latenessCases = []struct {
	name      string
	consumers int
	window    time.Duration
}{
	{"consumers=1", 1, -1},
	{"consumers=4", 4, -1},
	{"consumers=1/timer-only", 1, 0},
}

// BenchmarkLateness1000PerSecond runs 5 s of 1,000 suspends/s with Delay
// 10 ms per iteration (so it runs once at the default -benchtime) and
// reports release lateness in µs; the target is p99 <= 1000.
func BenchmarkLateness1000PerSecond(b *testing.B) {
	for _, c := range latenessCases {
		b.Run(c.name, func(b *testing.B) {
			var rep latencyReport
			for b.Loop() {
				rep = measureLateness(b, c.consumers, 1000, 5*time.Second, 10*time.Millisecond, c.window)
			}
			b.ReportMetric(float64(rep.p50.Microseconds()), "p50-late-µs")
			b.ReportMetric(float64(rep.p99.Microseconds()), "p99-late-µs")
			b.ReportMetric(float64(rep.max.Microseconds()), "max-late-µs")
			b.ReportMetric(rep.resumeP99*1e6, "p99-resume-late-µs")
		})
	}
}

// TestLatenessReport is the same measurement as a test, with a readable
// log; it runs only with SIPVIGIL_BENCH=1 because it takes 15 s.
func TestLatenessReport(t *testing.T) {
	if os.Getenv("SIPVIGIL_BENCH") != "1" {
		t.Skip("set SIPVIGIL_BENCH=1 to measure lateness (15 s)")
	}
	for _, c := range latenessCases {
		rep := measureLateness(t, c.consumers, 1000, 5*time.Second, 10*time.Millisecond, c.window)
		t.Logf("%s: sent=%d refused=%d release lateness p50=%v p99=%v max=%v; resume lateness (histogram) p50=%.0fµs p99=%.0fµs max=%.0fµs",
			c.name, rep.sent, rep.refused, rep.p50, rep.p99, rep.max,
			rep.resumeP50*1e6, rep.resumeP99*1e6, rep.resMax*1e6)
		if rep.refused != 0 {
			t.Errorf("%d enqueues refused", rep.refused)
		}
	}
}
