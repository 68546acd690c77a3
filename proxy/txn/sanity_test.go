package txn

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestNoPanicsOnOddInput feeds nil and malformed messages through every
// entry point. None may panic: a crash in a worker takes down every call it
// owns.
func TestNoPanicsOnOddInput(t *testing.T) {
	now := t0
	noHeaders := sip.NewRequest(sip.INVITE, sip.Uri{})
	odd := []*sip.Response{
		nil,
		sip.NewResponse(0, ""),     // invalid status
		sip.NewResponse(99, ""),    // below range
		sip.NewResponse(700, ""),   // above range
		sip.NewResponse(-1, ""),    // nonsense
		sip.NewResponse(486, ""),   // valid code, no CSeq/Via/To
		sip.NewResponse(200, "OK"), // valid code, no headers
		{},                         // zero value
	}
	requests := []*sip.Request{nil, noHeaders, {}, sip.NewRequest(sip.ACK, sip.Uri{})}

	for _, req := range requests {
		for _, reliable := range []bool{false, true} {
			for _, timers := range []Timers{{}, {T1: -1, T2: -1, T4: -1}, DefaultTimers()} {
				c := NewClient(req, reliable, timers, now)
				s := NewServer(req, reliable, timers, now)
				_ = c.Request()
				_ = s.Request()
				for _, res := range odd {
					c.OnResponse(res, now)
					s.Respond(res, now)
					s.OnRequestRetransmission(now)
					s.OnAck(now)
					AckFor(req, res)
					ClientKey(res)
				}
				for i := 0; i < 200 && !c.Deadline().IsZero(); i++ {
					c.OnTimer(c.Deadline())
				}
				for i := 0; i < 200 && !s.Deadline().IsZero(); i++ {
					s.OnTimer(s.Deadline())
				}
				c.OnTransportError(now)
				s.OnTransportError(now)
				c.OnTimer(now)
				s.OnTimer(now)
				CancelFor(req)
				ServerKey(req)
				CancelTargetKey(req)
				ClientKey(req)
			}
		}
	}

	// Zero-value transactions must not panic either.
	var c Client
	var s Server
	c.OnResponse(sip.NewResponse(200, ""), now)
	c.OnTimer(now)
	c.OnTransportError(now)
	s.Respond(sip.NewResponse(200, ""), now)
	s.OnRequestRetransmission(now)
	s.OnAck(now)
	s.OnTimer(now)
	s.OnTransportError(now)
	_ = c.Deadline()
	_ = s.Deadline()

	if AckFor(nil, nil) != nil || CancelFor(nil) != nil {
		t.Error("builders must return nil for a nil request")
	}
	if ack := AckFor(noHeaders, nil); ack == nil || ack.Method != sip.ACK {
		t.Errorf("AckFor(headerless) = %v", ack)
	}
}

func TestZeroTimersUseDefaults(t *testing.T) {
	c := NewClient(sip.NewRequest(sip.INVITE, sip.Uri{}), false, Timers{}, t0)
	if got := c.Deadline().Sub(t0); got != 500*time.Millisecond {
		t.Errorf("zero Timers: first Timer A at %v, want 500ms", got)
	}
}

func TestStateString(t *testing.T) {
	want := map[State]string{
		Calling: "Calling", Trying: "Trying", Proceeding: "Proceeding", Completed: "Completed",
		Confirmed: "Confirmed", Accepted: "Accepted", Terminated: "Terminated",
		0: "State(0)", 200: "State(200)",
	}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), s.String(), w)
		}
	}
}

func TestDefaultTimers(t *testing.T) {
	d := DefaultTimers()
	if d.T1 != 500*time.Millisecond || d.T2 != 4*time.Second || d.T4 != 5*time.Second {
		t.Errorf("DefaultTimers = %+v", d)
	}
}

func TestCompactKeepsWhatRetransmissionsNeed(t *testing.T) {
	now := time.Unix(0, 0)
	opt := newOptions(t)
	s := NewServer(opt, false, DefaultTimers(), now)
	s.Respond(responseTo(opt, 200), now)
	s.Compact()
	if s.Request() != nil {
		t.Error("Compact kept the request")
	}
	if s.OnRequestRetransmission(now) == nil {
		t.Error("Compact dropped the final a retransmitted request must get")
	}
	inv := newInvite(t)
	c := NewClient(inv, false, DefaultTimers(), now)
	c.Compact()
	if c.Request() == nil {
		t.Error("Compact dropped a request Timer A still needs")
	}
}
