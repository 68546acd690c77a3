package txn

import (
	"testing"
	"time"
)

func TestClientTimers(t *testing.T) {
	fast := Timers{T1: 100 * time.Millisecond, T2: 400 * time.Millisecond, T4: time.Second}
	slowT1 := Timers{T1: time.Second, T2: 4 * time.Second, T4: 5 * time.Second}

	tests := []struct {
		name     string
		invite   bool
		reliable bool
		timers   Timers
		events   []event
		want     []string
	}{
		{
			name:   "INVITE/UDP no answer: A doubles uncapped, B times out at 64*T1",
			invite: true,
			want: []string{
				"500ms A retransmit",
				"1.5s A retransmit",
				"3.5s A retransmit",
				"7.5s A retransmit",
				"15.5s A retransmit",
				"31.5s A retransmit",
				"32s B timeout terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP 1xx stops A and B, later 486 starts D",
			invite: true,
			events: []event{rx(sec(1), 180), rx(sec(2), 183), rx(sec(40), 486)},
			want: []string{
				"500ms A retransmit",
				"1s rx 180 deliver=true ack=false Proceeding",
				"2s rx 183 deliver=true ack=false Proceeding",
				"40s rx 486 deliver=true ack=true Completed",
				"1m12s D terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP 2xx: Accepted, 2xx retransmissions delivered, M at 64*T1",
			invite: true,
			events: []event{rx(sec(2), 200), rx(sec(3), 200), rx(sec(4), 180), rx(sec(5), 486)},
			want: []string{
				"500ms A retransmit",
				"1.5s A retransmit",
				"2s rx 200 deliver=true ack=false Accepted",
				"3s rx 200 deliver=true ack=false Accepted",
				"4s rx 180 deliver=false ack=false Accepted",
				"5s rx 486 deliver=false ack=false Accepted",
				"34s M terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP 486: ACK on first and on retransmission, D 32s",
			invite: true,
			events: []event{rx(sec(1), 486), rx(sec(2), 486), rx(sec(3), 200), rx(sec(4), 180)},
			want: []string{
				"500ms A retransmit",
				"1s rx 486 deliver=true ack=true Completed",
				"2s rx 486 deliver=false ack=true Completed",
				"3s rx 200 deliver=false ack=false Completed",
				"4s rx 180 deliver=false ack=false Completed",
				"33s D terminated",
				"end Terminated",
			},
		},
		{
			name:     "INVITE/TCP: no A, B at 32s",
			invite:   true,
			reliable: true,
			want:     []string{"32s B timeout terminated", "end Terminated"},
		},
		{
			name:     "INVITE/TCP 486: D=0",
			invite:   true,
			reliable: true,
			events:   []event{rx(sec(1), 486)},
			want: []string{
				"1s rx 486 deliver=true ack=true Completed",
				"1s D terminated",
				"end Terminated",
			},
		},
		{
			name:     "INVITE/TCP 2xx: M still 64*T1",
			invite:   true,
			reliable: true,
			events:   []event{rx(sec(1), 200)},
			want: []string{
				"1s rx 200 deliver=true ack=false Accepted",
				"33s M terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP transport error terminates",
			invite: true,
			events: []event{transportError(sec(1)), rx(sec(2), 200)},
			want: []string{
				"500ms A retransmit",
				"1s transport-error Terminated",
				"2s rx 200 deliver=false ack=false Terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP T1=100ms scales A and B; D keeps its 32s floor",
			invite: true,
			timers: fast,
			events: []event{rx(sec(7), 486)},
			want: []string{
				"100ms A retransmit",
				"300ms A retransmit",
				"700ms A retransmit",
				"1.5s A retransmit",
				"3.1s A retransmit",
				"6.3s A retransmit",
				"6.4s B timeout terminated",
				"7s rx 486 deliver=false ack=false Terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP T1=100ms 486: D=32s",
			invite: true,
			timers: fast,
			events: []event{rx(sec(0.05), 486)},
			want: []string{
				"50ms rx 486 deliver=true ack=true Completed",
				"32.05s D terminated",
				"end Terminated",
			},
		},
		{
			name:   "INVITE/UDP T1=1s: D=64*T1 when above 32s",
			invite: true,
			timers: slowT1,
			events: []event{rx(sec(0.5), 486)},
			want: []string{
				"500ms rx 486 deliver=true ack=true Completed",
				"1m4.5s D terminated",
				"end Terminated",
			},
		},
		{
			name: "non-INVITE/UDP no answer: E doubles to T2 cap, F at 64*T1",
			want: lines(
				"500ms E retransmit",
				"1.5s E retransmit",
				"3.5s E retransmit",
				every(sec(7.5), 4*time.Second, sec(31.5), "E retransmit"),
				"32s F timeout terminated",
				"end Terminated",
			),
		},
		{
			name:   "non-INVITE/UDP 1xx: E every T2 in Proceeding, final starts K=T4",
			events: []event{rx(sec(0.6), 100), rx(sec(10), 200), rx(sec(11), 200)},
			want: lines(
				"500ms E retransmit",
				"600ms rx 100 deliver=true ack=false Proceeding",
				"1.5s E retransmit",
				"5.5s E retransmit",
				"9.5s E retransmit",
				"10s rx 200 deliver=true ack=false Completed",
				"11s rx 200 deliver=false ack=false Completed",
				"15s K terminated",
				"end Terminated",
			),
		},
		{
			name:   "non-INVITE/UDP 1xx with no final: F still fires",
			events: []event{rx(sec(1), 100)},
			want: lines(
				"500ms E retransmit",
				"1s rx 100 deliver=true ack=false Proceeding",
				every(sec(1.5), 4*time.Second, sec(29.5), "E retransmit"),
				"32s F timeout terminated",
				"end Terminated",
			),
		},
		{
			name:     "non-INVITE/TCP: no E, K=0",
			reliable: true,
			events:   []event{rx(sec(2), 404)},
			want: []string{
				"2s rx 404 deliver=true ack=false Completed",
				"2s K terminated",
				"end Terminated",
			},
		},
		{
			name:     "non-INVITE/TCP no answer: F at 32s",
			reliable: true,
			want:     []string{"32s F timeout terminated", "end Terminated"},
		},
		{
			name:   "non-INVITE/UDP T1=100ms T2=400ms T4=1s",
			timers: fast,
			events: []event{rx(sec(2), 200)},
			want: lines(
				"100ms E retransmit",
				"300ms E retransmit",
				"700ms E retransmit",
				every(sec(1.1), 400*time.Millisecond, sec(1.9), "E retransmit"),
				"2s rx 200 deliver=true ack=false Completed",
				"3s K terminated",
				"end Terminated",
			),
		},
		{
			name:   "non-INVITE/UDP T1=100ms: F at 6.4s",
			timers: fast,
			want: lines(
				"100ms E retransmit",
				"300ms E retransmit",
				"700ms E retransmit",
				every(sec(1.1), 400*time.Millisecond, sec(6.3), "E retransmit"),
				"6.4s F timeout terminated",
				"end Terminated",
			),
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
			c := NewClient(req, tt.reliable, timers, t0)
			wantState := Trying
			if tt.invite {
				wantState = Calling
			}
			if c.State() != wantState || c.IsInvite() != tt.invite || c.Request() != req || c.Reliable() != tt.reliable {
				t.Fatalf("new client: state=%v invite=%v reliable=%v", c.State(), c.IsInvite(), c.Reliable())
			}
			diffTrace(t, runTrace(t, clientMachine{c}, tt.events), tt.want)
		})
	}
}

func TestClientInitialDeadline(t *testing.T) {
	tests := []struct {
		name     string
		invite   bool
		reliable bool
		want     time.Duration
	}{
		{"INVITE/UDP is Timer A", true, false, 500 * time.Millisecond},
		{"INVITE/TCP is Timer B", true, true, 32 * time.Second},
		{"non-INVITE/UDP is Timer E", false, false, 500 * time.Millisecond},
		{"non-INVITE/TCP is Timer F", false, true, 32 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newOptions(t)
			if tt.invite {
				req = newInvite(t)
			}
			c := NewClient(req, tt.reliable, DefaultTimers(), t0)
			if got := c.Deadline().Sub(t0); got != tt.want {
				t.Errorf("Deadline = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClientLateWakeUp(t *testing.T) {
	// A worker that wakes up long after the deadlines processes every due
	// timer at once and does not report a retransmission for a dead
	// transaction.
	c := NewClient(newInvite(t), false, DefaultTimers(), t0)
	r := c.OnTimer(t0.Add(40 * time.Second))
	if !r.Timeout || !r.Terminated || r.Retransmit {
		t.Errorf("late OnTimer = %+v, want timeout+terminated without retransmit", r)
	}
	if got := joinTimers(r.Fired); got != "A,B" {
		t.Errorf("Fired = %q, want A,B", got)
	}
	if !c.Deadline().IsZero() {
		t.Errorf("Deadline after termination = %v, want zero", c.Deadline())
	}
	// A stale heap entry calling again still learns the tx is gone.
	if r := c.OnTimer(t0.Add(41 * time.Second)); !r.Terminated || len(r.Fired) != 0 {
		t.Errorf("OnTimer after termination = %+v", r)
	}

	// Late but not past B: A fires once and is re-armed from now.
	c = NewClient(newInvite(t), false, DefaultTimers(), t0)
	r = c.OnTimer(t0.Add(2 * time.Second))
	if !r.Retransmit || r.Terminated || joinTimers(r.Fired) != "A" {
		t.Errorf("OnTimer(2s) = %+v", r)
	}
	if got := c.Deadline().Sub(t0); got != 3*time.Second {
		t.Errorf("next A = %v, want 3s", got)
	}
}

func TestClientEarlyOnTimerIsNoop(t *testing.T) {
	c := NewClient(newInvite(t), false, DefaultTimers(), t0)
	r := c.OnTimer(t0.Add(499 * time.Millisecond))
	if r.Retransmit || r.Timeout || r.Terminated || len(r.Fired) != 0 {
		t.Errorf("early OnTimer = %+v, want nothing", r)
	}
	if got := c.Deadline().Sub(t0); got != 500*time.Millisecond {
		t.Errorf("Deadline moved to %v", got)
	}
}
