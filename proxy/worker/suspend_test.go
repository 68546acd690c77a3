package worker

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
	"sipvigil/proxy/suspend"
)

const suspendConfig = `
listen: [{address: 127.0.0.1:5060}]
queues:
  reinvite: {delay: 10ms, capacity: 2, max_wait: 1s, on_full: {code: 503, reason: Queue Full, retry_after: 7s}}
  initial: {delay: 2s, capacity: 10, max_wait: 5s}
suspend:
  - {name: reinvite-delay, match: {methods: [INVITE], in_dialog: true}, queue: reinvite}
  - {name: hold-initial, match: {methods: [INVITE], in_dialog: false, header: {name: X-Hold, regex: yes}}, queue: initial}
destinations: {uas: {hops: ["127.0.0.1:5070"]}}
routes: [{name: default, to: uas}]
`

// newSuspendWorker builds a worker whose queues exist but have no consumer
// running: tests release tickets by hand, so every step is deterministic.
func newSuspendWorker(t *testing.T) (*Worker, *recorder, map[string]*suspend.Queue) {
	t.Helper()
	w, rec := newTestWorker(t, suspendConfig)
	cfg, err := config.Parse("test.yaml", []byte(suspendConfig))
	if err != nil {
		t.Fatal(err)
	}
	qs := map[string]*suspend.Queue{}
	w.opt.Queues = map[string]*QueueBinding{}
	for name, q := range cfg.Queues {
		sq := suspend.New(suspend.Config{Name: name, Delay: q.Delay, Consumers: 1, Capacity: q.Capacity}, func(suspend.Ticket) {})
		qs[name] = sq
		w.opt.Queues[name] = &QueueBinding{Queue: sq, Delay: q.Delay, MaxWait: q.MaxWait, OnFull: q.OnFull}
	}
	return w, rec, qs
}

// releaseAll hands every suspended transaction back, as the queue's
// consumers would at each ticket's due time.
func releaseAll(w *Worker, now time.Time) {
	for _, q := range w.opt.Queues {
		q.Queue.Flush()
	}
	for id, ctx := range w.suspended {
		if ctx.susp.queue != nil {
			t := ctx.susp.ticket
			w.handleResume(resumption{id: id, ticket: &t}, now)
		}
	}
	w.flushUnparks(now)
}

const reInvite = `
INVITE sip:bob@127.0.0.1:7000 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-reinv;rport
Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=b1
Call-ID: dlg-1@test
CSeq: 2 INVITE
Content-Length: 0

`

const byeAfter = `
BYE sip:bob@127.0.0.1:7000 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-bye;rport
Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=b1
Call-ID: dlg-1@test
CSeq: 3 BYE
Content-Length: 0

`

var uasContact = mustAddrPort("127.0.0.1:7000")

func TestReInviteWaitsAndBYEStaysBehindIt(t *testing.T) {
	w, rec, qs := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, reInvite), uacAddr), now)
	s := rec.take()
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 100 {
		t.Fatalf("suspended re-INVITE answered %v, want [100]", got)
	}
	if len(requestsTo(s, uasContact)) != 0 {
		t.Fatal("re-INVITE forwarded before its delay")
	}
	w.handle(inbound(msg(t, byeAfter), uacAddr), now.Add(time.Millisecond))
	if s := rec.take(); len(s) != 0 {
		t.Fatalf("BYE behind a suspended re-INVITE was processed: %v", s[0].msg)
	}
	releaseAll(w, now.Add(10*time.Millisecond))
	down := requestsTo(rec.take(), uasContact)
	if len(down) != 2 || down[0].Method != sip.INVITE || down[1].Method != sip.BYE {
		t.Fatalf("after release the UAS got %v, want [INVITE BYE]", methods(down))
	}
	st := qs["reinvite"].Stats()
	if st.Enqueued != 1 {
		t.Errorf("enqueued = %d", st.Enqueued)
	}
	if w.counters.Parked.Load() != 1 {
		t.Errorf("parked = %d, want 1", w.counters.Parked.Load())
	}
}

func TestRetransmissionOfSuspendedRequestAbsorbed(t *testing.T) {
	w, rec, _ := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, reInvite), uacAddr), now)
	rec.take()
	w.handle(inbound(msg(t, reInvite), uacAddr), now.Add(500*time.Millisecond))
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 100 {
		t.Fatalf("retransmission answered %v, want [100]", got)
	}
	if w.counters.Parked.Load() != 0 {
		t.Error("a retransmission of the suspended request was parked behind itself")
	}
}

func TestCancelWhileSuspended(t *testing.T) {
	w, rec, qs := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	inv := strings.Replace(invite, "Content-Length: 0", "X-Hold: yes\nContent-Length: 0", 1)
	w.handle(inbound(msg(t, inv), uacAddr), now)
	rec.take()
	cancel := strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(invite)
	w.handle(inbound(msg(t, cancel), uacAddr), now.Add(100*time.Millisecond))
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 2 || got[0] != 200 || got[1] != 487 {
		t.Fatalf("CANCEL of a suspended INVITE: upstream got %v, want [200 487]", got)
	}
	releaseAll(w, now.Add(2*time.Second))
	if s := rec.take(); len(requestsTo(s, uas1)) != 0 {
		t.Fatal("a cancelled suspended INVITE was forwarded at release")
	}
	if st := qs["initial"].Stats(); st.Cancelled != 1 {
		t.Errorf("cancelled = %d, want 1", st.Cancelled)
	}
}

func TestFullQueueAnswersOnFull(t *testing.T) {
	w, rec, qs := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	for i := range 3 {
		r := strings.NewReplacer("dlg-1@test", "dlg-"+string(rune('a'+i)), "branch=z9hG4bK-reinv", "branch=z9hG4bK-r"+string(rune('a'+i))).Replace(reInvite)
		w.handle(inbound(msg(t, r), uacAddr), now)
	}
	got := responsesTo(rec.take(), uacAddr)
	if c := codes(got); len(c) != 4 || c[3] != 503 {
		t.Fatalf("upstream got %v, want three 100s and a 503", c)
	}
	if h := got[3].GetHeader("Retry-After"); h == nil || h.Value() != "7" {
		t.Errorf("Retry-After = %v, want 7", h)
	}
	if st := qs["reinvite"].Stats(); st.Overflowed != 1 {
		t.Errorf("overflowed = %d, want 1", st.Overflowed)
	}
}

func TestMaxWaitExpiryGets408(t *testing.T) {
	w, rec, qs := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, reInvite), uacAddr), now)
	rec.take()
	w.fireDue(now.Add(1100 * time.Millisecond))
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) == 0 || got[0] != 408 {
		t.Fatalf("at max_wait upstream got %v, want 408", got)
	}
	releaseAll(w, now.Add(2*time.Second))
	if len(requestsTo(rec.take(), uasContact)) != 0 {
		t.Fatal("an expired entry was forwarded at release")
	}
	if st := qs["reinvite"].Stats(); st.Expired != 1 {
		t.Errorf("expired = %d, want 1", st.Expired)
	}
}

func TestResponsesSkipTheWait(t *testing.T) {
	w, rec, _ := newSuspendWorker(t)
	now := time.Unix(1000, 0)
	// An INVITE of the dialog is already forwarded (no To-tag: not held).
	first := strings.ReplaceAll(invite, "call-1@test", "dlg-1@test")
	w.handle(inbound(msg(t, first), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(msg(t, reInvite), uacAddr), now)
	rec.take()
	w.handle(inbound(responseTo(t, fwd, 200, "OK"), uas1), now)
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 200 {
		t.Fatalf("a response to a forwarded transaction waited behind the suspended one: %v", got)
	}
}

func TestAsyncContinuation(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	var done func(AsyncResult)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	rec.take()
	// Suspend a second call through the async API, as a lookup does.
	inv2 := strings.NewReplacer("call-1@test", "call-2@test", "z9hG4bK-uac-1", "z9hG4bK-uac-2").Replace(invite)
	m := msg(t, inv2)
	in := inbound(m, uacAddr)
	ctx := w.newServerCtx("k2", in, m.(*sip.Request), now)
	ctx.first, _ = w.prepare(ctx)
	w.suspendAsync(ctx, "test", time.Second, config.Reply{Code: 500, Reason: "Lookup Failed"}, func(d func(AsyncResult)) bool {
		done = d
		return true
	}, now)
	done(AsyncResult{Hops: []config.Hop{{Host: "127.0.0.1", Port: 5080, Transport: "udp", Addr: uas2}}})
	w.handleResume(<-w.resume, now)
	if got := requestsTo(rec.take(), uas2); len(got) != 1 {
		t.Fatal("async result did not route the request to its hop")
	}

	// Work that cannot start is answered with on_error at once.
	m3 := msg(t, strings.NewReplacer("call-1@test", "call-3@test", "z9hG4bK-uac-1", "z9hG4bK-uac-3").Replace(invite))
	ctx3 := w.newServerCtx("k3", inbound(m3, uacAddr), m3.(*sip.Request), now)
	w.suspendAsync(ctx3, "test", time.Second, config.Reply{Code: 500, Reason: "Lookup Failed"}, func(func(AsyncResult)) bool { return false }, now)
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 500 {
		t.Fatalf("unstartable async work answered %v, want [500]", got)
	}
}

func TestShutdownRejectAnswersSuspended503(t *testing.T) {
	w, rec, _ := newSuspendWorker(t)
	w.opt.RejectQueued = true
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, reInvite), uacAddr), now)
	rec.take()
	w.handleControl(control{kind: ctrlDrain, deadline: now.Add(time.Minute)}, now)
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 503 {
		t.Fatalf("suspended request at shutdown got %v, want [503]", got)
	}
}

func methods(rs []*sip.Request) []string {
	var m []string
	for _, r := range rs {
		m = append(m, string(r.Method))
	}
	return m
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
