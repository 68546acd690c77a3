package txn

import (
	"testing"
	"time"
)

func TestServerTimers(t *testing.T) {
	fast := Timers{T1: 100 * time.Millisecond, T2: 400 * time.Millisecond, T4: time.Second}

	tests := []struct {
		name     string
		invite   bool
		reliable bool
		timers   Timers
		events   []event
		want     []string
	}{
		{
			name:   "INVITE/UDP 486 without ACK: G doubles capped at T2, H times out at 64*T1",
			invite: true,
			events: []event{tx(0, 100), tx(sec(1), 486)},
			want: lines(
				"0s tx 100 send=true Proceeding",
				"1s tx 486 send=true Completed",
				"1.5s G resend 486",
				"2.5s G resend 486",
				"4.5s G resend 486",
				every(sec(8.5), 4*time.Second, sec(32.5), "G resend 486"),
				"33s H timeout terminated",
				"end Terminated",
			),
		},
		{
			name:   "INVITE/UDP retransmissions answered with last 1xx, then final; ACK confirms, I=T4",
			invite: true,
			events: []event{
				retrans(sec(0.1)),
				tx(sec(0.2), 100), tx(sec(0.3), 180), retrans(sec(0.4)),
				tx(sec(1), 486), retrans(sec(1.2)),
				tx(sec(1.3), 500), tx(sec(1.4), 200), tx(sec(1.45), 180),
				ack(sec(3)), retrans(sec(3.1)), ack(sec(3.2)),
			},
			want: []string{
				"100ms retrans absorbed Proceeding",
				"200ms tx 100 send=true Proceeding",
				"300ms tx 180 send=true Proceeding",
				"400ms retrans resend 180 Proceeding",
				"1s tx 486 send=true Completed",
				"1.2s retrans resend 486 Completed",
				"1.3s tx 500 send=false Completed",
				"1.4s tx 200 send=false Completed",
				"1.45s tx 180 send=false Completed",
				"1.5s G resend 486",
				"2.5s G resend 486",
				"3s ack absorbed=true Confirmed",
				"3.1s retrans absorbed Confirmed",
				"3.2s ack absorbed=true Confirmed",
				"8s I terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP 2xx: Accepted absorbs INVITE, forwards 2xx, routes ACK, L at 64*T1",
			invite: true,
			events: []event{
				tx(0, 100), tx(sec(1), 200), retrans(sec(2)), tx(sec(3), 200),
				ack(sec(4)), tx(sec(5), 486), tx(sec(6), 180), transportError(sec(7)),
			},
			want: []string{
				"0s tx 100 send=true Proceeding",
				"1s tx 200 send=true Accepted",
				"2s retrans absorbed Accepted",
				"3s tx 200 send=true Accepted",
				"4s ack absorbed=false Accepted",
				"5s tx 486 send=false Accepted",
				"6s tx 180 send=false Accepted",
				"7s transport-error Accepted",
				"33s L terminated",
				"end Terminated",
			},
		},
		{
			name:     "INVITE/TCP 486: no G, H at 64*T1",
			invite:   true,
			reliable: true,
			events:   []event{tx(sec(1), 486)},
			want: []string{
				"1s tx 486 send=true Completed",
				"33s H timeout terminated",
				"end Terminated",
			},
		},
		{
			name:     "INVITE/TCP ACK: I=0",
			invite:   true,
			reliable: true,
			events:   []event{tx(sec(1), 486), ack(sec(2))},
			want: []string{
				"1s tx 486 send=true Completed",
				"2s ack absorbed=true Confirmed",
				"2s I terminated",
				"end Terminated",
			},
		},
		{
			name:     "INVITE/TCP 2xx: L still 64*T1",
			invite:   true,
			reliable: true,
			events:   []event{tx(sec(1), 200)},
			want: []string{
				"1s tx 200 send=true Accepted",
				"33s L terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP transport error in Completed terminates",
			invite: true,
			events: []event{tx(sec(1), 486), transportError(sec(1.2)), retrans(sec(2)), ack(sec(3))},
			want: []string{
				"1s tx 486 send=true Completed",
				"1.2s transport-error Terminated",
				"2s retrans absorbed Terminated",
				"3s ack absorbed=false Terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP ACK in Proceeding is not absorbed",
			invite: true,
			events: []event{ack(sec(1)), tx(sec(2), 603), ack(sec(2.1))},
			want: []string{
				"1s ack absorbed=false Proceeding",
				"2s tx 603 send=true Completed",
				"2.1s ack absorbed=true Confirmed",
				"7.1s I terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP T1=100ms T2=400ms T4=1s scales G, H and I",
			invite: true,
			timers: fast,
			events: []event{tx(0, 486)},
			want: lines(
				"0s tx 486 send=true Completed",
				"100ms G resend 486",
				"300ms G resend 486",
				"700ms G resend 486",
				every(sec(1.1), 400*time.Millisecond, sec(6.3), "G resend 486"),
				"6.4s H timeout terminated",
				"end Terminated",
			),
		},
		{
			name:   "INVITE/UDP T1=100ms: I=T4=1s, L=6.4s",
			invite: true,
			timers: fast,
			events: []event{tx(0, 486), ack(sec(0.2))},
			want: []string{
				"0s tx 486 send=true Completed",
				"100ms G resend 486",
				"200ms ack absorbed=true Confirmed",
				"1.2s I terminated",
				"end Terminated",
			},
		},
		{
			name: "non-INVITE/UDP: Trying absorbs, Proceeding resends 1xx, Completed resends final, J=64*T1",
			events: []event{
				retrans(sec(0.1)), tx(sec(0.2), 100), retrans(sec(0.3)),
				tx(sec(1), 200), retrans(sec(2)), tx(sec(3), 500), tx(sec(3.5), 100), ack(sec(4)),
			},
			want: []string{
				"100ms retrans absorbed Trying",
				"200ms tx 100 send=true Proceeding",
				"300ms retrans resend 100 Proceeding",
				"1s tx 200 send=true Completed",
				"2s retrans resend 200 Completed",
				"3s tx 500 send=false Completed",
				"3.5s tx 100 send=false Completed",
				"4s ack absorbed=false Completed",
				"33s J terminated",
				"end Terminated",
			},
		},
		{
			name:     "non-INVITE/TCP final from Trying: J=0",
			reliable: true,
			events:   []event{tx(sec(1), 404)},
			want: []string{
				"1s tx 404 send=true Completed",
				"1s J terminated",
				"end Terminated",
			},
		},
		{
			name:   "non-INVITE/UDP T1=100ms: J=6.4s",
			timers: fast,
			events: []event{tx(sec(1), 200)},
			want: []string{
				"1s tx 200 send=true Completed",
				"7.4s J terminated",
				"end Terminated",
			},
		},
		{
			name:   "non-INVITE/UDP transport error",
			events: []event{tx(sec(1), 200), transportError(sec(2))},
			want: []string{
				"1s tx 200 send=true Completed",
				"2s transport-error Terminated",
				"end Terminated",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timers := tt.timers
			if timers == (Timers{}) {
				timers = DefaultTimers()
			}
			req := newOptions(t)
			if tt.invite {
				req = newInvite(t)
			}
			s := NewServer(req, tt.reliable, timers, t0)
			wantState := Trying
			if tt.invite {
				wantState = Proceeding
			}
			if s.State() != wantState || s.IsInvite() != tt.invite || s.Request() != req || s.Reliable() != tt.reliable {
				t.Fatalf("new server: state=%v invite=%v reliable=%v", s.State(), s.IsInvite(), s.Reliable())
			}
			if !s.Deadline().IsZero() {
				t.Fatalf("new server has deadline %v", s.Deadline().Sub(t0))
			}
			diffTrace(t, runTrace(t, serverMachine{s}, tt.events), tt.want)
		})
	}
}

func TestServerLastResponse(t *testing.T) {
	req := newInvite(t)
	s := NewServer(req, false, DefaultTimers(), t0)
	if s.LastResponse() != nil {
		t.Fatal("LastResponse before any response")
	}
	ringing := responseTo(req, 180)
	s.Respond(ringing, t0)
	if s.LastResponse() != ringing {
		t.Error("LastResponse is not the 180")
	}
	busy := responseTo(req, 486)
	s.Respond(busy, t0)
	if s.LastResponse() != busy {
		t.Error("LastResponse is not the 486")
	}
	// A refused response is not recorded.
	s.Respond(responseTo(req, 200), t0)
	if s.LastResponse() != busy {
		t.Error("refused 200 replaced LastResponse")
	}
}

func TestServerLateWakeUp(t *testing.T) {
	s := NewServer(newInvite(t), false, DefaultTimers(), t0)
	s.Respond(responseTo(s.Request(), 486), t0)
	// G (0.5s) and H (32s) are both overdue: H wins, no resend reported.
	r := s.OnTimer(t0.Add(time.Minute))
	if !r.Timeout || !r.Terminated || r.Resend != nil {
		t.Errorf("late OnTimer = %+v", r)
	}
	if got := joinTimers(r.Fired); got != "G,H" {
		t.Errorf("Fired = %q, want G,H", got)
	}
}
