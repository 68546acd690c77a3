package evidence_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/order"
)

// wallBase is the fixed offset of the tests' wall clock: mono 0 is
// 2026-01-01T00:00:00Z.
var wallBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func wall(mono int64) time.Time { return time.Unix(0, wallBase+mono) }

// fakeNow is a settable CLOCK_MONOTONIC.
type fakeNow struct{ ns atomic.Int64 }

func (f *fakeNow) Now() int64          { return f.ns.Load() }
func (f *fakeNow) Set(ns int64)        { f.ns.Store(ns) }
func (f *fakeNow) Add(d time.Duration) { f.ns.Add(int64(d)) }

func newTracker(t *testing.T, cfg evidence.Config, sinks ...evidence.Sink) (*evidence.Tracker, *fakeNow) {
	t.Helper()
	now := &fakeNow{}
	now.Set(int64(time.Hour))
	if cfg.Now == nil {
		cfg.Now = now.Now
	}
	if cfg.Wall == nil {
		cfg.Wall = wall
	}
	return evidence.New(cfg, sinks...), now
}

func stamped(mono int64, ifindex uint32) *observe.Stamp {
	s := &observe.Stamp{}
	s.Set(mono, ifindex)
	return s
}

func inMsg(method string, status int, mono int64) observe.Msg {
	return observe.Msg{Dir: observe.In, Method: method, Status: status, Mono: mono, Proto: observe.ProtoUDP}
}

func outMsg(method string, status int, mono int64, relays int) observe.Msg {
	return observe.Msg{Dir: observe.Out, Method: method, Status: status, Mono: mono, Relays: relays, Proto: observe.ProtoUDP}
}

// inviteTxn is a server INVITE transaction: INVITE in, 100 out, INVITE
// forwarded, 180 and 200 in, then the two responses relayed upstream at
// out180 and out200 (the 180 entered at 2000, the 200 at 3000).
func inviteTxn(out180, out200 int64) *observe.Txn {
	msgs := []observe.Msg{
		inMsg("INVITE", 0, 1000),         // 0
		outMsg("INVITE", 100, 1010, 0),   // 1: 100 Trying, generated
		outMsg("INVITE", 0, 1020, 1),     // 2: forwards 0
		inMsg("INVITE", 180, 2000),       // 3
		inMsg("INVITE", 200, 3000),       // 4
		outMsg("INVITE", 180, out180, 4), // 5: forwards 3
		outMsg("INVITE", 200, out200, 5), // 6: forwards 4
	}
	for i := range msgs {
		msgs[i].ID = uint64(i + 1)
	}
	return &observe.Txn{
		Worker: 1, CallID: "call-1", Method: "INVITE", CSeq: 1, Branch: "z9hG4bK-1",
		FromTag: "caller", Kind: observe.TxnServer, Start: 1000, End: max(out180, out200), Final: 200,
		Msgs: msgs,
	}
}

// requestTxn is a record of one in-dialog request relayed once: it entered
// at in and was forwarded at out.
func requestTxn(callID, fromTag, method string, cseq uint32, in, out int64) *observe.Txn {
	kind := observe.TxnServer
	if method == "ACK" {
		kind = observe.TxnAck
	}
	return &observe.Txn{
		CallID: callID, FromTag: fromTag, Method: method, CSeq: cseq, Kind: kind,
		Start: in, End: out,
		Msgs: []observe.Msg{inMsg(method, 0, in), outMsg(method, 0, out, 1)},
	}
}

func TestResolveKernelStamps(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := requestTxn("c", "a", "BYE", 3, 1000, 2000)
	rec.Msgs[0].Stamp = stamped(900, 2)  // kernel ingress before the read
	rec.Msgs[1].Stamp = stamped(2100, 5) // kernel egress after the write

	r := tr.Resolve(rec)
	if r.Txn != rec {
		t.Fatalf("resolved Txn does not embed the record")
	}
	if len(r.Msgs) != 2 {
		t.Fatalf("len(Msgs) = %d, want 2", len(r.Msgs))
	}
	want := []struct {
		mono    int64
		ifindex uint32
	}{{900, 2}, {2100, 5}}
	for i, w := range want {
		m := r.Msgs[i]
		if m.Msg != &rec.Msgs[i] {
			t.Errorf("Msgs[%d].Msg does not point at the record's message", i)
		}
		if m.Source != evidence.SourceKernel || m.Source.String() != "kernel" {
			t.Errorf("Msgs[%d].Source = %v, want kernel", i, m.Source)
		}
		if m.Mono != w.mono || m.Ifindex != w.ifindex {
			t.Errorf("Msgs[%d] Mono/Ifindex = %d/%d, want %d/%d", i, m.Mono, m.Ifindex, w.mono, w.ifindex)
		}
		if !m.Wall.Equal(wall(w.mono)) {
			t.Errorf("Msgs[%d].Wall = %v, want %v", i, m.Wall, wall(w.mono))
		}
		// The user-space time stays available on the embedded Msg.
		if m.Msg.Mono == m.Mono {
			t.Errorf("Msgs[%d]: user time overwritten", i)
		}
	}
	if !r.Start.Equal(wall(900)) || !r.End.Equal(wall(2100)) {
		t.Errorf("Start/End = %v/%v, want kernel in/out %v/%v", r.Start, r.End, wall(900), wall(2100))
	}
	s := tr.Stats()
	if s.MsgsKernel != 2 || s.MsgsUser != 0 {
		t.Errorf("MsgsKernel/MsgsUser = %d/%d, want 2/0", s.MsgsKernel, s.MsgsUser)
	}
}

func TestResolveUserFallback(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := requestTxn("c", "a", "BYE", 3, 1000, 2000)
	rec.Msgs[0].Stamp = nil              // eBPF off
	rec.Msgs[1].Stamp = &observe.Stamp{} // eBPF on, never matched

	r := tr.Resolve(rec)
	for i, m := range r.Msgs {
		if m.Source != evidence.SourceUser || m.Source.String() != "user" {
			t.Errorf("Msgs[%d].Source = %v, want user", i, m.Source)
		}
		if m.Mono != rec.Msgs[i].Mono {
			t.Errorf("Msgs[%d].Mono = %d, want user time %d", i, m.Mono, rec.Msgs[i].Mono)
		}
		if m.Ifindex != 0 {
			t.Errorf("Msgs[%d].Ifindex = %d, want 0", i, m.Ifindex)
		}
		if !m.Wall.Equal(wall(rec.Msgs[i].Mono)) {
			t.Errorf("Msgs[%d].Wall = %v", i, m.Wall)
		}
	}
	s := tr.Stats()
	if s.MsgsKernel != 0 || s.MsgsUser != 2 {
		t.Errorf("MsgsKernel/MsgsUser = %d/%d, want 0/2", s.MsgsKernel, s.MsgsUser)
	}
}

func TestResolveMixedSources(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := inviteTxn(2500, 3500)
	rec.Msgs[0].Stamp = stamped(990, 1)
	rec.Msgs[3].Stamp = stamped(1990, 1)
	rec.Msgs[6].Stamp = &observe.Stamp{}
	r := tr.Resolve(rec)
	var kernel, user int
	for _, m := range r.Msgs {
		switch m.Source {
		case evidence.SourceKernel:
			kernel++
		case evidence.SourceUser:
			user++
		default:
			t.Fatalf("Source = %d, want kernel or user", m.Source)
		}
	}
	if kernel != 2 || user != 5 {
		t.Fatalf("kernel/user = %d/%d, want 2/5", kernel, user)
	}
	if s := tr.Stats(); s.MsgsKernel != 2 || s.MsgsUser != 5 {
		t.Fatalf("Stats MsgsKernel/MsgsUser = %d/%d, want 2/5", s.MsgsKernel, s.MsgsUser)
	}
	// Counters accumulate over records.
	tr.Resolve(requestTxn("c", "a", "BYE", 3, 1000, 2000))
	if s := tr.Stats(); s.MsgsKernel != 2 || s.MsgsUser != 7 {
		t.Fatalf("Stats after 2nd record = %d/%d, want 2/7", s.MsgsKernel, s.MsgsUser)
	}
}

func TestResolveStartEnd(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})

	t.Run("first in, last out", func(t *testing.T) {
		rec := inviteTxn(3400, 3300) // the 180 is the last message out
		rec.Start, rec.End = 500, 9000
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(1000)) {
			t.Errorf("Start = %v, want first In %v", r.Start, wall(1000))
		}
		if !r.End.Equal(wall(3400)) {
			t.Errorf("End = %v, want last Out %v", r.End, wall(3400))
		}
	})
	t.Run("earliest in wins over index", func(t *testing.T) {
		rec := inviteTxn(2500, 3500)
		rec.Msgs[0].Stamp = stamped(1200, 1) // the first message, not the earliest
		rec.Msgs[3].Mono = 800               // a later In message with an earlier time
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(800)) {
			t.Errorf("Start = %v, want the earliest In %v", r.Start, wall(800))
		}
	})
	t.Run("kernel times", func(t *testing.T) {
		rec := inviteTxn(2500, 3500)
		rec.Msgs[0].Stamp = stamped(950, 1)
		rec.Msgs[6].Stamp = stamped(3600, 1)
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(950)) || !r.End.Equal(wall(3600)) {
			t.Errorf("Start/End = %v/%v, want %v/%v", r.Start, r.End, wall(950), wall(3600))
		}
	})
	t.Run("nothing sent", func(t *testing.T) {
		rec := &observe.Txn{CallID: "c", Method: "INVITE", Kind: observe.TxnServer, Start: 1000, End: 7000,
			Msgs: []observe.Msg{inMsg("INVITE", 0, 1000)}}
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(1000)) || !r.End.Equal(wall(7000)) {
			t.Errorf("Start/End = %v/%v, want %v/record End %v", r.Start, r.End, wall(1000), wall(7000))
		}
	})
	t.Run("no messages", func(t *testing.T) {
		rec := &observe.Txn{CallID: "c", Method: "INVITE", Kind: observe.TxnServer, Start: 1000, End: 7000}
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(1000)) || !r.End.Equal(wall(7000)) {
			t.Errorf("Start/End = %v/%v, want record bounds", r.Start, r.End)
		}
		if len(r.Msgs) != 0 || len(r.Violations) != 0 {
			t.Errorf("Msgs/Violations = %d/%d", len(r.Msgs), len(r.Violations))
		}
	})
	t.Run("end never before start", func(t *testing.T) {
		rec := &observe.Txn{CallID: "c", Method: "INVITE", Kind: observe.TxnServer, Start: 1000, End: 1500,
			Msgs: []observe.Msg{inMsg("INVITE", 0, 2000)}}
		r := tr.Resolve(rec)
		if !r.Start.Equal(wall(2000)) || !r.End.Equal(r.Start) {
			t.Errorf("Start/End = %v/%v, want End clamped to Start %v", r.Start, r.End, wall(2000))
		}
	})
}

func TestResolveWaits(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := requestTxn("c", "a", "INVITE", 2, 1000, 90000)
	rec.Waits = []observe.Wait{
		{Queue: "reinvite", Kind: "queue", Start: 2000, End: 52000, Delay: 50 * time.Microsecond, Outcome: "released"},
		{Queue: "lnp", Kind: "lookup", Start: 60000, End: 0, Outcome: "cancelled"}, // never resumed
	}
	r := tr.Resolve(rec)
	if len(r.Waits) != 2 {
		t.Fatalf("len(Waits) = %d, want 2", len(r.Waits))
	}
	for i := range r.Waits {
		if r.Waits[i].Wait != &rec.Waits[i] {
			t.Errorf("Waits[%d] does not point at the record's wait", i)
		}
	}
	if w := r.Waits[0]; !w.StartWall.Equal(wall(2000)) || !w.EndWall.Equal(wall(52000)) {
		t.Errorf("Waits[0] = %v..%v, want %v..%v", w.StartWall, w.EndWall, wall(2000), wall(52000))
	}
	if w := r.Waits[1]; !w.StartWall.Equal(wall(60000)) || !w.EndWall.Equal(wall(60000)) {
		t.Errorf("Waits[1] (End 0) = %v..%v, want End = Start = %v", w.StartWall, w.EndWall, wall(60000))
	}
	// The record itself is not modified.
	if rec.Waits[1].End != 0 {
		t.Errorf("record's wait End modified: %d", rec.Waits[1].End)
	}
}

func TestResolveResponsesInOrder(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	r := tr.Resolve(inviteTxn(2010, 3010))
	if len(r.Violations) != 0 {
		t.Fatalf("Violations = %v, want none", r.Violations)
	}
	for k, n := range tr.Stats().Violations {
		if n != 0 {
			t.Errorf("Stats.Violations[%s] = %d, want 0", k, n)
		}
	}
}

func TestResolveProvisionalAfterFinal(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// The 200 (in 3000) left at 3010, the 180 (in 2000) only at 3050.
	r := tr.Resolve(inviteTxn(3050, 3010))
	if len(r.Violations) != 1 {
		t.Fatalf("Violations = %v, want exactly one", r.Violations)
	}
	v := r.Violations[0]
	if v.Kind != order.ProvisionalAfterFinal {
		t.Fatalf("kind = %q, want %q", v.Kind, order.ProvisionalAfterFinal)
	}
	wantFirst := order.Forward{In: 3000, Out: 3010, UserIn: 3000, UserOut: 3010, Method: "INVITE", Status: 200, CSeq: 1, Ref: 6}
	wantSecond := order.Forward{In: 2000, Out: 3050, UserIn: 2000, UserOut: 3050, Method: "INVITE", Status: 180, CSeq: 1, Ref: 5}
	if v.First != wantFirst || v.Second != wantSecond {
		t.Fatalf("violation = %+v / %+v, want %+v / %+v", v.First, v.Second, wantFirst, wantSecond)
	}
	s := tr.Stats()
	if s.Violations[order.ProvisionalAfterFinal] != 1 || s.Violations[order.ResponseReorder] != 0 || s.Violations[order.RequestReorder] != 0 {
		t.Fatalf("Stats.Violations = %v", s.Violations)
	}
}

func TestResolveResponsesUseKernelTimes(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// In user time the 180 left before the 200; on the wire (kernel
	// egress) it left after it. The wire decides.
	rec := inviteTxn(3005, 3010)
	rec.Msgs[3].Stamp = stamped(1990, 1)
	rec.Msgs[4].Stamp = stamped(2990, 1)
	rec.Msgs[5].Stamp = stamped(3030, 1)
	rec.Msgs[6].Stamp = stamped(3020, 1)
	r := tr.Resolve(rec)
	if len(r.Violations) != 1 || r.Violations[0].Kind != order.ProvisionalAfterFinal {
		t.Fatalf("Violations = %v, want one %s", r.Violations, order.ProvisionalAfterFinal)
	}
	if v := r.Violations[0]; v.First.In != 2990 || v.First.Out != 3020 || v.Second.In != 1990 || v.Second.Out != 3030 {
		t.Fatalf("violation times = %+v / %+v, want kernel times", v.First, v.Second)
	}
}

func TestResolveResponseReorder(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := inviteTxn(0, 0)
	// 183 in at 2000, 180 in at 2500; 180 out at 2600, 183 out at 2700;
	// 200 last.
	rec.Msgs = []observe.Msg{
		inMsg("INVITE", 0, 1000),
		outMsg("INVITE", 0, 1020, 1),
		inMsg("INVITE", 183, 2000),
		inMsg("INVITE", 180, 2500),
		outMsg("INVITE", 180, 2600, 4),
		outMsg("INVITE", 183, 2700, 3),
		inMsg("INVITE", 200, 3000),
		outMsg("INVITE", 200, 3010, 7),
	}
	r := tr.Resolve(rec)
	if len(r.Violations) != 1 || r.Violations[0].Kind != order.ResponseReorder {
		t.Fatalf("Violations = %v, want one %s", r.Violations, order.ResponseReorder)
	}
	if v := r.Violations[0]; v.First.Status != 183 || v.Second.Status != 180 || v.First.Ref != 5 || v.Second.Ref != 4 {
		t.Fatalf("violation = %+v / %+v, want 183 (msg 5) before 180 (msg 4)", v.First, v.Second)
	}
	if n := tr.Stats().Violations[order.ResponseReorder]; n != 1 {
		t.Fatalf("Stats.Violations[response_reorder] = %d, want 1", n)
	}
}

func TestResolveIgnoresRetransmissionsAndGenerated(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	rec := inviteTxn(2010, 3010)
	rec.Msgs = append(rec.Msgs,
		// A timer retransmission of the 180 after the 200, even one that
		// (wrongly) names its source: not a forward.
		observe.Msg{Dir: observe.Out, Method: "INVITE", Status: 180, Mono: 5000, Relays: 4, Retransmission: true},
		// An absorbed inbound retransmission of the 180.
		observe.Msg{Dir: observe.In, Method: "INVITE", Status: 180, Mono: 5100, Retransmission: true},
		// A 1xx the proxy generated itself after the final.
		outMsg("INVITE", 181, 5200, 0),
		// A Relays index past the end must not be trusted (nor panic).
		outMsg("INVITE", 183, 5300, 99),
	)
	r := tr.Resolve(rec)
	if len(r.Violations) != 0 {
		t.Fatalf("Violations = %v, want none", r.Violations)
	}
}

func TestResolveStatelessNotARequest(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// A stateless relay of a 200 retransmission is not a request of the
	// dialog side, whatever its times.
	stateless := &observe.Txn{CallID: "c", FromTag: "a", Method: "INVITE", CSeq: 1, Kind: observe.TxnStateless,
		Msgs: []observe.Msg{inMsg("INVITE", 200, 1000), outMsg("INVITE", 200, 9000, 1)}}
	if r := tr.Resolve(stateless); len(r.Violations) != 0 {
		t.Fatalf("stateless: Violations = %v", r.Violations)
	}
	if r := tr.Resolve(requestTxn("c", "a", "INVITE", 2, 2000, 3000)); len(r.Violations) != 0 {
		t.Fatalf("request after stateless relay: Violations = %v, want none", r.Violations)
	}
}

func TestResolveRequestReorder(t *testing.T) {
	// The ACK entered at 1000 but left at 5000 (held on a queue); the
	// re-INVITE behind it entered at 2000 and left at 3000.
	ack := func() *observe.Txn { return requestTxn("call-1", "caller", "ACK", 1, 1000, 5000) }
	reinvite := func() *observe.Txn { return requestTxn("call-1", "caller", "INVITE", 2, 2000, 3000) }

	check := func(t *testing.T, first, second *observe.Txn) {
		t.Helper()
		tr, _ := newTracker(t, evidence.Config{})
		r1 := tr.Resolve(first)
		r2 := tr.Resolve(second)
		if len(r1.Violations) != 0 {
			t.Fatalf("first record resolved: Violations = %v, want none", r1.Violations)
		}
		if len(r2.Violations) != 1 {
			t.Fatalf("second record resolved: Violations = %v, want exactly one", r2.Violations)
		}
		v := r2.Violations[0]
		if v.Kind != order.RequestReorder {
			t.Fatalf("kind = %q, want %q", v.Kind, order.RequestReorder)
		}
		if v.First.Method != "ACK" || v.First.CSeq != 1 || v.Second.Method != "INVITE" || v.Second.CSeq != 2 {
			t.Fatalf("violation = %+v / %+v, want the ACK before the re-INVITE", v.First, v.Second)
		}
		if v.First.In != 1000 || v.First.Out != 5000 || v.Second.In != 2000 || v.Second.Out != 3000 {
			t.Fatalf("violation times = %+v / %+v", v.First, v.Second)
		}
		s := tr.Stats()
		if s.Violations[order.RequestReorder] != 1 || s.Violations[order.ResponseReorder] != 0 || s.Violations[order.ProvisionalAfterFinal] != 0 {
			t.Fatalf("Stats.Violations = %v", s.Violations)
		}
	}
	t.Run("ack resolved first", func(t *testing.T) { check(t, ack(), reinvite()) })
	t.Run("reinvite resolved first", func(t *testing.T) { check(t, reinvite(), ack()) })

	t.Run("in order", func(t *testing.T) {
		tr, _ := newTracker(t, evidence.Config{})
		for _, rec := range []*observe.Txn{
			requestTxn("call-1", "caller", "INVITE", 1, 100, 200),
			requestTxn("call-1", "caller", "INVITE", 2, 2000, 3000),
			requestTxn("call-1", "caller", "ACK", 1, 1000, 1500),
			requestTxn("call-1", "caller", "BYE", 3, 4000, 4100),
		} {
			if r := tr.Resolve(rec); len(r.Violations) != 0 {
				t.Fatalf("%s %d: Violations = %v, want none", rec.Method, rec.CSeq, r.Violations)
			}
		}
	})
}

func TestResolveRequestReorderKernelTimes(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// In user time the ACK left first; on the wire the re-INVITE did.
	ack := requestTxn("c", "a", "ACK", 1, 1000, 2500)
	ack.Msgs[0].Stamp = stamped(990, 1)
	ack.Msgs[1].Stamp = stamped(2700, 1)
	reinvite := requestTxn("c", "a", "INVITE", 2, 2000, 2600)
	reinvite.Msgs[0].Stamp = stamped(1990, 1)
	reinvite.Msgs[1].Stamp = stamped(2650, 1)
	tr.Resolve(ack)
	r := tr.Resolve(reinvite)
	if len(r.Violations) != 1 || r.Violations[0].Kind != order.RequestReorder {
		t.Fatalf("Violations = %v, want one %s", r.Violations, order.RequestReorder)
	}
}

func TestResolveRequestFirstForwardOnly(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// A forked INVITE: the first branch left at 150, a second (serial
	// fork) only at 9000. The request's forward is its first one.
	invite := &observe.Txn{CallID: "c", FromTag: "a", Method: "INVITE", CSeq: 1, Kind: observe.TxnServer,
		Msgs: []observe.Msg{
			inMsg("INVITE", 0, 100),
			outMsg("INVITE", 100, 110, 0),
			outMsg("INVITE", 0, 150, 1),
			outMsg("INVITE", 0, 9000, 1),
		}}
	if r := tr.Resolve(invite); len(r.Violations) != 0 {
		t.Fatalf("INVITE: Violations = %v", r.Violations)
	}
	if r := tr.Resolve(requestTxn("c", "a", "ACK", 1, 200, 300)); len(r.Violations) != 0 {
		t.Fatalf("ACK: Violations = %v, want none (compared with the second fork?)", r.Violations)
	}
}

func TestResolveRequestRetransmissionNotForward(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	// The first copy out is marked as a retransmission; the forward is the
	// next one.
	rec := &observe.Txn{CallID: "c", FromTag: "a", Method: "INVITE", CSeq: 2, Kind: observe.TxnServer,
		Msgs: []observe.Msg{
			inMsg("INVITE", 0, 2000),
			{Dir: observe.Out, Method: "INVITE", Mono: 2100, Relays: 1, Retransmission: true},
			outMsg("INVITE", 0, 6000, 1),
		}}
	tr.Resolve(rec)
	r := tr.Resolve(requestTxn("c", "a", "BYE", 3, 3000, 4000))
	if len(r.Violations) != 1 || r.Violations[0].First.Out != 6000 {
		t.Fatalf("Violations = %v, want one against the forward at 6000", r.Violations)
	}
}

func TestResolveRequestsOtherDialogOrSide(t *testing.T) {
	cases := []struct {
		name             string
		callID2, fromTag string
	}{
		{"other from tag", "call-1", "callee"},
		{"other call-id", "call-2", "caller"},
		{"other both", "call-2", "callee"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, _ := newTracker(t, evidence.Config{})
			tr.Resolve(requestTxn("call-1", "caller", "ACK", 1, 1000, 5000))
			r := tr.Resolve(requestTxn(c.callID2, c.fromTag, "INVITE", 2, 2000, 3000))
			if len(r.Violations) != 0 {
				t.Fatalf("Violations = %v, want none across dialog sides", r.Violations)
			}
			if n := tr.Stats().Violations[order.RequestReorder]; n != 0 {
				t.Fatalf("Stats request_reorder = %d", n)
			}
		})
	}
	t.Run("key is not a plain concatenation", func(t *testing.T) {
		tr, _ := newTracker(t, evidence.Config{})
		tr.Resolve(requestTxn("call-1", "ab", "ACK", 1, 1000, 5000))
		r := tr.Resolve(requestTxn("call-1a", "b", "INVITE", 2, 2000, 3000))
		if len(r.Violations) != 0 {
			t.Fatalf("Violations = %v, want none", r.Violations)
		}
	})
}

func TestResolveDialogWindowBounded(t *testing.T) {
	// An old, slow request is compared with its neighbours, but a long
	// call does not keep every request forever.
	run := func(between int) int {
		tr, _ := newTracker(t, evidence.Config{})
		tr.Resolve(requestTxn("c", "a", "INVITE", 1, 100, 1000))
		for i := range between {
			in := int64(2000 + 10*i)
			tr.Resolve(requestTxn("c", "a", "INFO", uint32(2+i), in, in+5))
		}
		// Entered after the first request, left before it.
		r := tr.Resolve(requestTxn("c", "a", "INFO", 999, 150, 900))
		return len(r.Violations)
	}
	if n := run(1); n != 1 {
		t.Fatalf("one request between: %d violations, want 1", n)
	}
	if n := run(100); n != 0 {
		t.Fatalf("100 requests between: %d violations, want 0 (window unbounded?)", n)
	}
}

func TestResolveMaxDialogs(t *testing.T) {
	t.Run("reset when full", func(t *testing.T) {
		tr, _ := newTracker(t, evidence.Config{MaxDialogs: 1, DialogIdle: time.Second})
		tr.Resolve(requestTxn("A", "a", "ACK", 1, 1000, 5000))
		tr.Resolve(requestTxn("B", "b", "INVITE", 1, 1000, 1100)) // A is busy: reset
		if n := tr.Stats().DialogsReset; n != 1 {
			t.Fatalf("DialogsReset = %d, want 1", n)
		}
		// A's ACK was forgotten: the overtaking re-INVITE goes unseen.
		r := tr.Resolve(requestTxn("A", "a", "INVITE", 2, 2000, 3000))
		if len(r.Violations) != 0 {
			t.Fatalf("Violations = %v, want none after reset", r.Violations)
		}
		if n := tr.Stats().DialogsReset; n != 2 {
			t.Fatalf("DialogsReset = %d, want 2", n)
		}
	})
	t.Run("idle dialogs collected first", func(t *testing.T) {
		tr, now := newTracker(t, evidence.Config{MaxDialogs: 2, DialogIdle: time.Second})
		tr.Resolve(requestTxn("A", "a", "INVITE", 1, 1000, 1100))
		now.Add(500 * time.Millisecond)
		tr.Resolve(requestTxn("B", "b", "ACK", 1, 1000, 5000))
		now.Add(700 * time.Millisecond) // A idle 1.2s, B 0.7s
		tr.Resolve(requestTxn("C", "c", "INVITE", 1, 1000, 1100))
		if n := tr.Stats().DialogsReset; n != 0 {
			t.Fatalf("DialogsReset = %d, want 0 (idle A should have been collected)", n)
		}
		// B was kept: its overtaken ACK is still checked.
		r := tr.Resolve(requestTxn("B", "b", "INVITE", 2, 2000, 3000))
		if len(r.Violations) != 1 {
			t.Fatalf("Violations = %v, want one (B forgotten?)", r.Violations)
		}
	})
}

func TestStatsViolationKinds(t *testing.T) {
	tr, _ := newTracker(t, evidence.Config{})
	s := tr.Stats()
	if len(s.Violations) != len(order.Kinds) {
		t.Fatalf("Stats.Violations = %v, want every kind", s.Violations)
	}
	for _, k := range order.Kinds {
		if n, ok := s.Violations[k]; !ok || n != 0 {
			t.Fatalf("Stats.Violations[%s] = %d, %v", k, n, ok)
		}
	}
	tr.Resolve(inviteTxn(3050, 3010))                              // provisional_after_final
	tr.Resolve(inviteTxn(3050, 3010))                              // again
	tr.Resolve(requestTxn("call-9", "x", "ACK", 1, 1000, 5000))    //
	tr.Resolve(requestTxn("call-9", "x", "INVITE", 2, 2000, 3000)) // request_reorder
	s = tr.Stats()
	want := map[string]uint64{order.ProvisionalAfterFinal: 2, order.RequestReorder: 1, order.ResponseReorder: 0}
	for k, n := range want {
		if s.Violations[k] != n {
			t.Errorf("Stats.Violations[%s] = %d, want %d", k, s.Violations[k], n)
		}
	}
	// Resolve is not a hand-over.
	if s.Records != 0 || s.Dropped != 0 {
		t.Errorf("Records/Dropped = %d/%d after direct Resolve, want 0/0", s.Records, s.Dropped)
	}
	// Stats returns a copy.
	s.Violations[order.RequestReorder] = 42
	if n := tr.Stats().Violations[order.RequestReorder]; n != 1 {
		t.Errorf("Stats map shared with the tracker: %d", n)
	}
}

// sink collects resolved transactions and the monotonic time each arrived.
type sink struct {
	mu  sync.Mutex
	got []*evidence.Txn
	at  []int64
}

func (s *sink) Export(t *evidence.Txn) {
	now := observe.Monotonic()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, t)
	s.at = append(s.at, now)
}

func (s *sink) snapshot() ([]*evidence.Txn, []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*evidence.Txn(nil), s.got...), append([]int64(nil), s.at...)
}

// wait polls until the sink holds n transactions.
func (s *sink) wait(t *testing.T, n int) ([]*evidence.Txn, []int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, at := s.snapshot()
		if len(got) >= n {
			return got, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink has %d transactions after 5s, want %d", len(got), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// run starts tr.Run; the returned stop cancels it and waits for it to
// return (failing the test if it does not).
func run(t *testing.T, tr *evidence.Tracker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRunResolvesAfterSettle(t *testing.T) {
	const settle = 20 * time.Millisecond
	s1, s2 := &sink{}, &sink{}
	tr := evidence.New(evidence.Config{Settle: settle, Wall: wall}, s1, s2)
	run(t, tr)

	recs := []*observe.Txn{
		requestTxn("c", "a", "INVITE", 1, 100, 200),
		requestTxn("c", "a", "ACK", 1, 1000, 5000),
		requestTxn("c", "a", "INVITE", 2, 2000, 3000),
	}
	handed := make([]int64, len(recs))
	for i, rec := range recs {
		handed[i] = observe.Monotonic()
		tr.Txn(rec)
	}
	got, at := s1.wait(t, len(recs))
	if len(got) != len(recs) {
		t.Fatalf("sink got %d, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i].Txn != recs[i] {
			t.Fatalf("resolved[%d] is %s %d, want hand-over order", i, got[i].Method, got[i].CSeq)
		}
		if held := time.Duration(at[i] - handed[i]); held < settle {
			t.Errorf("record %d resolved %v after hand-over, want >= Settle %v", i, held, settle)
		}
	}
	// The ACK/re-INVITE reorder is found across records.
	if len(got[2].Violations) != 1 || got[2].Violations[0].Kind != order.RequestReorder {
		t.Errorf("re-INVITE Violations = %v, want one request_reorder", got[2].Violations)
	}
	// Every sink sees every record, the same object.
	got2, _ := s2.wait(t, len(recs))
	for i := range got2 {
		if got2[i] != got[i] {
			t.Errorf("sinks got different objects at %d", i)
		}
	}
	s := tr.Stats()
	if s.Records != 3 || s.Resolved != 3 || s.Dropped != 0 {
		t.Errorf("Records/Resolved/Dropped = %d/%d/%d, want 3/3/0", s.Records, s.Resolved, s.Dropped)
	}
	if s.MsgsUser != 6 || s.MsgsKernel != 0 {
		t.Errorf("MsgsUser/MsgsKernel = %d/%d, want 6/0", s.MsgsUser, s.MsgsKernel)
	}
}

func TestRunStampAfterHandOver(t *testing.T) {
	// The kernel event lands after the worker handed the record over but
	// before Settle expires: the resolved record must use it. A fake clock
	// makes "before Settle expires" deterministic.
	const settle = 20 * time.Millisecond
	snk := &sink{}
	tr, now := newTracker(t, evidence.Config{Settle: settle}, snk)
	run(t, tr)

	rec := requestTxn("c", "a", "BYE", 3, 1000, 2000)
	rec.Msgs[0].Stamp = &observe.Stamp{}
	rec.Msgs[1].Stamp = &observe.Stamp{}
	tr.Txn(rec)
	rec.Msgs[0].Stamp.Set(950, 7)
	time.Sleep(3 * settle) // real time passing must not matter
	if got, _ := snk.snapshot(); len(got) != 0 {
		t.Fatalf("resolved before the (fake) Settle expired")
	}
	rec.Msgs[1].Stamp.Set(2050, 8)

	// Let fake time pass until the record is resolved.
	deadline := time.Now().Add(5 * time.Second)
	for {
		now.Add(settle)
		if got, _ := snk.snapshot(); len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record not resolved")
		}
		time.Sleep(2 * time.Millisecond)
	}
	got, _ := snk.snapshot()
	r := got[0]
	for i, want := range []int64{950, 2050} {
		if r.Msgs[i].Source != evidence.SourceKernel || r.Msgs[i].Mono != want {
			t.Errorf("Msgs[%d] = %v %d, want kernel %d", i, r.Msgs[i].Source, r.Msgs[i].Mono, want)
		}
	}
	if s := tr.Stats(); s.MsgsKernel != 2 || s.MsgsUser != 0 {
		t.Errorf("MsgsKernel/MsgsUser = %d/%d, want 2/0", s.MsgsKernel, s.MsgsUser)
	}
}

func TestTxnDropsWhenFull(t *testing.T) {
	snk := &sink{}
	tr, _ := newTracker(t, evidence.Config{QueueSize: 1, Settle: time.Hour}, snk)
	recs := []*observe.Txn{
		requestTxn("c", "a", "INVITE", 1, 100, 200),
		requestTxn("c", "a", "ACK", 1, 300, 400),
		requestTxn("c", "a", "BYE", 2, 500, 600),
	}
	for _, rec := range recs {
		tr.Txn(rec) // must not block with Run not running
	}
	s := tr.Stats()
	if s.Records != 3 || s.Dropped != 2 || s.Resolved != 0 {
		t.Fatalf("Records/Dropped/Resolved = %d/%d/%d, want 3/2/0", s.Records, s.Dropped, s.Resolved)
	}
	// The one queued record is resolved when Run stops.
	stop := run(t, tr)
	stop()
	got, _ := snk.snapshot()
	if len(got) != 1 || got[0].Txn != recs[0] {
		t.Fatalf("resolved %d records, want the first one only", len(got))
	}
	if s := tr.Stats(); s.Resolved != 1 || s.Dropped != 2 || s.Records != 3 {
		t.Fatalf("after Run: Records/Dropped/Resolved = %d/%d/%d, want 3/2/1", s.Records, s.Dropped, s.Resolved)
	}
}

func TestRunCancelResolvesHeld(t *testing.T) {
	snk := &sink{}
	// Settle an hour on the real clock: nothing is due before the cancel.
	tr := evidence.New(evidence.Config{Settle: time.Hour, Wall: wall}, snk)
	stop := run(t, tr)
	var recs []*observe.Txn
	for i := range 5 {
		rec := requestTxn("c", "a", "INFO", uint32(i+1), int64(1000*(i+1)), int64(1000*(i+1)+10))
		recs = append(recs, rec)
		tr.Txn(rec)
	}
	time.Sleep(20 * time.Millisecond) // let Run take some of them in
	if got, _ := snk.snapshot(); len(got) != 0 {
		t.Fatalf("%d records resolved before Settle", len(got))
	}
	start := time.Now()
	stop() // fails the test if Run does not return
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	got, _ := snk.snapshot()
	if len(got) != len(recs) {
		t.Fatalf("resolved %d records on cancel, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i].Txn != recs[i] {
			t.Errorf("resolved[%d] out of hand-over order", i)
		}
	}
	if s := tr.Stats(); s.Resolved != 5 || s.Records != 5 {
		t.Errorf("Records/Resolved = %d/%d, want 5/5", s.Records, s.Resolved)
	}
}

func TestRunCancelLateHandOver(t *testing.T) {
	// A record handed over while Run is shutting down (its last settle) is
	// still resolved.
	snk := &sink{}
	tr := evidence.New(evidence.Config{Settle: time.Hour, Wall: wall}, snk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(ctx)
	}()
	first := requestTxn("c", "a", "INFO", 1, 1000, 1010)
	tr.Txn(first)
	cancel()
	time.Sleep(10 * time.Millisecond) // Run is in its last settle now
	late := requestTxn("c", "a", "INFO", 2, 2000, 2010)
	tr.Txn(late)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
	got, _ := snk.snapshot()
	if len(got) != 2 || got[0].Txn != first || got[1].Txn != late {
		t.Fatalf("resolved %d records, want both, in order", len(got))
	}
}

func TestTraceID(t *testing.T) {
	for _, callID := range []string{"", "a84b4c76e66710@pc33.atlanta.com", "call-1", "call-2"} {
		sum := sha256.Sum256([]byte("sipvigil/call-id\x00" + callID))
		var want [16]byte
		copy(want[:], sum[:16])
		if got := evidence.TraceID(callID); got != want {
			t.Errorf("TraceID(%q) = %x, want %x", callID, got, want)
		}
		if again := evidence.TraceID(callID); again != want {
			t.Errorf("TraceID(%q) not deterministic: %x then %x", callID, want, again)
		}
	}
	if evidence.TraceID("call-1") == evidence.TraceID("call-2") {
		t.Errorf("TraceID equal for different Call-IDs")
	}
	var zero [16]byte
	if evidence.TraceID("call-1") == zero {
		t.Errorf("TraceID is zero (invalid as an OTel trace ID)")
	}
	// A known value, so a change of the derivation is caught even if the
	// test's own computation were changed with it.
	if got := evidence.TraceID("call-1"); got != traceIDCall1 {
		t.Errorf("TraceID(call-1) = %x, want %x", got, traceIDCall1)
	}
}

// traceIDCall1 is the first 16 bytes of SHA-256("sipvigil/call-id\x00call-1").
var traceIDCall1 = [16]byte{0x31, 0xbe, 0xfd, 0x46, 0x1d, 0xf2, 0x7e, 0x4f, 0x6f, 0xb8, 0x4f, 0x11, 0x2b, 0xe5, 0x19, 0xe2}
