package worker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
	"sipvigil/proxy/suspend"
)

// The suspend/resume overhead per transaction, on the worker:
//
//	go test -run '^$' -bench 'ReInvite' -benchmem ./proxy/worker/
//
// BenchmarkReInviteSuspended minus BenchmarkReInviteDirect is what the
// reinvite-delay recipe costs per re-INVITE (ns and allocs): the suspend
// rule match, the queue ticket, the parked dialog, the resumption and the
// lateness/wait histograms. Both run the same transaction: re-INVITE in
// (100 Trying out), forwarded, 200 from the UAS relayed upstream, every
// timer of the transaction fired. Parsing is excluded (done in batches with
// the timer stopped); building the UAS's 200 is included, equally in both.
//
// The 10 ms delay is a wait, not work: the suspended benchmark releases the
// ticket at once (Queue.Flush, as releaseAll does) and resumes at the
// ticket's due time. Flush allocates its batch slice (1 alloc, 64 B) which
// the consumer goroutine does not, so the suspended figure is one alloc
// high. BenchmarkReInviteSuspendedConsumer uses a running consumer and the
// worker's resume channel instead (wall time, goroutine hand-off included).

// benchQueueConfig has the default reinvite queue. The direct benchmark
// uses it without the suspend rule, so the workers differ only in the rule.
const benchQueueConfig = `
listen: [{address: 127.0.0.1:5060}]
queues:
  reinvite: {delay: 10ms, consumers: 1, capacity: 10000, max_wait: 5s}
destinations: {uas: {hops: ["127.0.0.1:5070"]}}
routes: [{name: default, to: uas}]
`

const benchSuspendRule = `
suspend:
  - {name: reinvite-delay, match: {methods: [INVITE], in_dialog: true}, queue: reinvite}
`

// reInviteBatch is how many re-INVITEs are parsed at a time, timer stopped.
const reInviteBatch = 512

// newReInviteBenchWorker builds a worker that discards its output, with the
// configured queues bound; release is each queue's release callback (nil:
// hand the ticket to this worker's resume channel, as serve does).
func newReInviteBenchWorker(b *testing.B, yaml string, release func(suspend.Ticket)) (*Worker, map[string]*suspend.Queue) {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	w, _ := newTestWorker(&testing.T{}, yaml)
	w.opt.Out = nullSender{}
	if release == nil {
		release = w.Release
	}
	qs := map[string]*suspend.Queue{}
	w.opt.Queues = map[string]*QueueBinding{}
	for name, q := range cfg.Queues {
		sq := suspend.New(suspend.Config{Name: name, Delay: q.Delay, Consumers: q.Consumers, Capacity: q.Capacity}, release)
		qs[name] = sq
		w.opt.Queues[name] = &QueueBinding{Queue: sq, Delay: q.Delay, MaxWait: q.MaxWait, OnFull: q.OnFull}
	}
	return w, qs
}

// reInviteParser turns reInvite into requests with a fresh Call-ID and
// branch each, parsed reInviteBatch at a time with the benchmark timer
// stopped.
type reInviteParser struct {
	b     *testing.B
	n     int
	batch []*sip.Request
}

func (p *reInviteParser) next() *sip.Request {
	if len(p.batch) == 0 {
		p.b.StopTimer()
		p.batch = make([]*sip.Request, reInviteBatch)
		for i := range p.batch {
			id := strconv.Itoa(p.n)
			p.n++
			text := strings.NewReplacer("dlg-1@test", "bench-dlg-"+id+"@test", "branch=z9hG4bK-reinv", "branch=z9hG4bK-reinv-"+id).Replace(reInvite)
			m, err := sip.ParseMessage([]byte(strings.ReplaceAll(strings.TrimLeft(text, "\n"), "\n", "\r\n")))
			if err != nil {
				p.b.Fatal(err)
			}
			p.batch[i] = m.(*sip.Request)
		}
		p.b.StartTimer()
	}
	r := p.batch[0]
	p.batch[0] = nil
	p.batch = p.batch[1:]
	return r
}

// forwardedOf returns the request the worker forwarded for req (nil if it
// forwarded nothing).
func forwardedOf(w *Worker, req *sip.Request) *sip.Request {
	for _, br := range w.clients {
		if br.ctx != nil && br.ctx.req == req && br.req != nil {
			return br.req
		}
	}
	return nil
}

// answer200 relays the UAS's 200 for req's forwarded copy.
func answer200(b *testing.B, w *Worker, req *sip.Request, now time.Time) {
	fwd := forwardedOf(w, req)
	if fwd == nil {
		b.Fatalf("re-INVITE %s was not forwarded", req.CallID().Value())
	}
	r200 := sip.NewResponseFromRequest(fwd, 200, "OK", nil)
	w.handle(inbound(r200, uasContact), now)
}

// BenchmarkReInviteDirect: an in-dialog re-INVITE routed at once (no
// suspend rule), answered 200, its transactions run to completion.
func BenchmarkReInviteDirect(b *testing.B) {
	w, _ := newReInviteBenchWorker(b, benchQueueConfig, nil)
	p := &reInviteParser{b: b}
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := p.next()
		w.handle(inbound(req, uacAddr), now)
		answer200(b, w, req, now.Add(10*time.Millisecond))
		// Let every transaction of this re-INVITE finish.
		now = now.Add(40 * time.Second)
		w.fireDue(now)
	}
	b.StopTimer()
	if s := w.counters.Suspended.Load(); s != 0 {
		b.Fatalf("direct benchmark suspended %d requests", s)
	}
	if len(w.servers) != 0 || len(w.clients) != 0 {
		b.Fatalf("left behind: servers=%d clients=%d", len(w.servers), len(w.clients))
	}
}

// BenchmarkReInviteSuspended: the same re-INVITE through the reinvite-delay
// rule: suspended (100 Trying, ticket enqueued, dialog parked), released by
// the queue into the worker's resume channel, resumed at its due time on
// the worker, forwarded, answered 200.
func BenchmarkReInviteSuspended(b *testing.B) {
	w, qs := newReInviteBenchWorker(b, benchQueueConfig+benchSuspendRule, nil)
	q := qs["reinvite"]
	p := &reInviteParser{b: b}
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := p.next()
		w.handle(inbound(req, uacAddr), now)
		// The consumer's job at the due time: hand the ticket back.
		if q.Flush() != 1 {
			b.Fatal("re-INVITE was not queued")
		}
		due := now.Add(10 * time.Millisecond)
		w.handleResume(<-w.resume, due)
		w.flushUnparks(due)
		answer200(b, w, req, due)
		now = now.Add(40 * time.Second)
		w.fireDue(now)
	}
	b.StopTimer()
	checkSuspendedRun(b, w, q, b.N)
}

// BenchmarkReInviteSuspendedConsumer is BenchmarkReInviteSuspended with the
// queue's consumer goroutine running (Delay 0, so no 10 ms sleep): the
// ticket goes Enqueue → consumer wake-up → Worker.Release → resume channel
// → handleResume. ns/op is wall time and includes the goroutine hand-off,
// so it depends on the scheduler and on what else runs on the box.
func BenchmarkReInviteSuspendedConsumer(b *testing.B) {
	yaml := strings.Replace(benchQueueConfig, "delay: 10ms", "delay: 0s", 1) + benchSuspendRule
	w, qs := newReInviteBenchWorker(b, yaml, nil)
	q := qs["reinvite"]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	defer func() { cancel(); <-done }()
	p := &reInviteParser{b: b}
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := p.next()
		w.handle(inbound(req, uacAddr), now)
		w.handleResume(<-w.resume, now)
		w.flushUnparks(now)
		answer200(b, w, req, now)
		now = now.Add(40 * time.Second)
		w.fireDue(now)
	}
	b.StopTimer()
	checkSuspendedRun(b, w, q, b.N)
}

// checkSuspendedRun makes sure every iteration really went through the
// queue and was resumed, and nothing was left behind.
func checkSuspendedRun(b *testing.B, w *Worker, q *suspend.Queue, n int) {
	b.Helper()
	st := q.Stats()
	if st.Enqueued != uint64(n) || st.Resumed != uint64(n) || st.Overflowed != 0 || st.Expired != 0 {
		b.Fatalf("queue stats after %d re-INVITEs: enqueued=%d resumed=%d overflowed=%d expired=%d",
			n, st.Enqueued, st.Resumed, st.Overflowed, st.Expired)
	}
	if len(w.suspended) != 0 || len(w.parked) != 0 || len(w.servers) != 0 || len(w.clients) != 0 {
		b.Fatalf("left behind: suspended=%d parked=%d servers=%d clients=%d",
			len(w.suspended), len(w.parked), len(w.servers), len(w.clients))
	}
}
