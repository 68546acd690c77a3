package worker

import (
	"strconv"
	"testing"
	"time"

	"sipvigil/proxy/observe"
)

// txnSink collects the records a worker hands over.
type txnSink struct{ got []*observe.Txn }

func (s *txnSink) Txn(t *observe.Txn) { s.got = append(s.got, t) }

type msgWant struct {
	dir     observe.Direction
	label   string // method or status
	relays  int
	retrans bool
}

func checkMsgs(t *testing.T, rec *observe.Txn, want []msgWant) {
	t.Helper()
	if len(rec.Msgs) != len(want) {
		for i, m := range rec.Msgs {
			t.Logf("msg %d: %+v", i, m)
		}
		t.Fatalf("%s record has %d messages, want %d", rec.Method, len(rec.Msgs), len(want))
	}
	for i, w := range want {
		m := rec.Msgs[i]
		label := m.Method
		if m.Status != 0 {
			label = strconv.Itoa(m.Status)
		}
		if m.Dir != w.dir || label != w.label || m.Relays != w.relays || m.Retransmission != w.retrans {
			t.Errorf("msg %d = %v %s relays=%d retrans=%v, want %v %s relays=%d retrans=%v",
				i, m.Dir, label, m.Relays, m.Retransmission, w.dir, w.label, w.relays, w.retrans)
		}
		if m.Dir == observe.Out && (m.ID>>63 != 1 || m.Mono == 0) {
			t.Errorf("msg %d: outbound ID %#x mono %d, want worker-numbered and timed", i, m.ID, m.Mono)
		}
	}
}

// TestTransactionRecords: an INVITE transaction's record says which
// outbound message relays which inbound one, and is handed over when its
// final response is out; the 2xx ACK gets a record of its own.
func TestTransactionRecords(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	sink := &txnSink{}
	w.opt.Txns, w.opt.KernelStamps = sink, true
	now := time.Unix(1000, 0)
	in := inbound(msg(t, invite), uacAddr)
	in.PacketID, in.Mono = 7, 1000
	w.handle(in, now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 180, "Ringing"), uas1), now)
	if len(sink.got) != 0 {
		t.Fatal("record handed over before the final response")
	}
	w.handle(inbound(responseTo(t, fwd, 200, "OK"), uas1), now)
	if len(sink.got) != 1 {
		t.Fatalf("%d records after the 200, want 1", len(sink.got))
	}
	r := sink.got[0]
	if r.Kind != observe.TxnServer || r.Method != "INVITE" || !r.Initial || r.CallID != "call-1@test" || r.CSeq != 1 ||
		r.Branch != "z9hG4bK-uac-1" || r.FromTag != "a1" || r.Final != 200 || r.Start != 1000 || r.End == 0 {
		t.Errorf("record = %+v", r)
	}
	if r.Msgs[0].ID != 7 || r.Msgs[0].Mono != 1000 || r.Msgs[0].Peer != uacAddr {
		t.Errorf("inbound INVITE = %+v", r.Msgs[0])
	}
	checkMsgs(t, r, []msgWant{
		{observe.In, "INVITE", 0, false},
		{observe.Out, "100", 0, false},
		{observe.Out, "INVITE", 1, false},
		{observe.In, "180", 0, false},
		{observe.Out, "180", 4, false},
		{observe.In, "200", 0, false},
		{observe.Out, "200", 6, false},
	})
	for _, i := range []int{1, 2, 4, 6} {
		if r.Msgs[i].Stamp == nil {
			t.Errorf("msg %d has no kernel stamp slot", i)
		}
	}
}

// TestRecordRetransmissionMarked: timer retransmissions and absorbed
// inbound retransmissions are marked as such, never as relays.
func TestRecordRetransmissionMarked(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	sink := &txnSink{}
	w.opt.Txns = sink
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	rec.take()
	// Timer A: the INVITE is retransmitted after T1 (500ms).
	w.fireDue(now.Add(600 * time.Millisecond))
	if n := len(requestsTo(rec.take(), uas1)); n != 1 {
		t.Fatalf("%d retransmissions, want 1", n)
	}
	// The UAC retransmits too; the proxy absorbs it.
	w.handle(inbound(msg(t, invite), uacAddr), now.Add(time.Second))
	w.handle(inbound(msg(t, invite), uacAddr), now.Add(time.Second)) // and again
	// Timer C / B eventually answer 408; force the end.
	w.fireDue(now.Add(200 * time.Second))
	if len(sink.got) != 1 {
		t.Fatalf("%d records, want 1", len(sink.got))
	}
	r := sink.got[0]
	var retransOut, retransIn int
	for _, m := range r.Msgs {
		if m.Retransmission && m.Dir == observe.Out {
			retransOut++
		}
		if m.Retransmission && m.Dir == observe.In {
			retransIn++
		}
	}
	if retransOut < 1 || retransIn != 2 {
		t.Errorf("retransmissions out=%d in=%d, want >=1 and 2", retransOut, retransIn)
	}
}
