package txn

import (
	"strconv"
	"time"
)

// Timers holds the RFC 3261 §17.1.1.1 / §17.1.2.2 base intervals from which
// every transaction timer is derived. A zero or negative field falls back to
// the DefaultTimers value, because a zero T1 would make retransmission
// timers fire in a tight loop.
type Timers struct {
	T1 time.Duration // RTT estimate: initial retransmit interval.
	T2 time.Duration // cap on the retransmit interval of non-INVITE requests and INVITE responses.
	T4 time.Duration // maximum time a message stays in the network.
}

// DefaultTimers returns the RFC 3261 recommended values: T1=500ms, T2=4s, T4=5s.
func DefaultTimers() Timers {
	return Timers{T1: 500 * time.Millisecond, T2: 4 * time.Second, T4: 5 * time.Second}
}

// MinTimerD is the lower bound of Timer D over unreliable transports. RFC
// 3261 §17.1.1.2 asks for "at least 32 seconds" independent of T1, because
// it must outlive the peer's Timer G/H retransmissions of the final response
// even when our own T1 is tuned down.
const MinTimerD = 32 * time.Second

func (t Timers) normalized() Timers {
	d := DefaultTimers()
	if t.T1 <= 0 {
		t.T1 = d.T1
	}
	if t.T2 <= 0 {
		t.T2 = d.T2
	}
	if t.T4 <= 0 {
		t.T4 = d.T4
	}
	return t
}

// transactionTimeout is 64*T1, used by Timers B, F, H, J (unreliable), L and M.
func (t Timers) transactionTimeout() time.Duration { return 64 * t.T1 }

func (t Timers) timerD(reliable bool) time.Duration {
	if reliable {
		return 0
	}
	return max(MinTimerD, t.transactionTimeout())
}

// State is a transaction state from the RFC 3261 §17 figures, plus the
// RFC 6026 Accepted state. The zero value is not a valid state.
type State uint8

// Calling is INVITE-client only, Trying non-INVITE only (either side),
// Confirmed INVITE-server only and Accepted INVITE-only (either side);
// Proceeding, Completed and Terminated are shared by all four machines.
const (
	Calling State = iota + 1
	Trying
	Proceeding
	Completed
	Confirmed
	Accepted
	Terminated
)

var stateNames = [...]string{
	Calling:    "Calling",
	Trying:     "Trying",
	Proceeding: "Proceeding",
	Completed:  "Completed",
	Confirmed:  "Confirmed",
	Accepted:   "Accepted",
	Terminated: "Terminated",
}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// TimerName is the RFC 3261 / RFC 6026 letter of a transaction timer, for
// logs, metrics and tests.
type TimerName string

const (
	TimerA TimerName = "A" // INVITE client: request retransmit.
	TimerB TimerName = "B" // INVITE client: transaction timeout.
	TimerD TimerName = "D" // INVITE client: wait for final response retransmissions.
	TimerE TimerName = "E" // non-INVITE client: request retransmit.
	TimerF TimerName = "F" // non-INVITE client: transaction timeout.
	TimerG TimerName = "G" // INVITE server: final response retransmit.
	TimerH TimerName = "H" // INVITE server: wait for ACK.
	TimerI TimerName = "I" // INVITE server: wait for ACK retransmissions.
	TimerJ TimerName = "J" // non-INVITE server: wait for request retransmissions.
	TimerK TimerName = "K" // non-INVITE client: wait for response retransmissions.
	TimerL TimerName = "L" // INVITE server (RFC 6026): wait for INVITE retransmissions after 2xx.
	TimerM TimerName = "M" // INVITE client (RFC 6026): wait for 2xx retransmissions.
)

// retransmits reports whether the timer only triggers a retransmission.
// When such a timer is due at the same instant as one that ends the
// transaction, the ending one is processed first so no pointless
// retransmission is reported.
func (n TimerName) retransmits() bool {
	return n == TimerA || n == TimerE || n == TimerG
}

// maxConcurrentTimers is the most timers any single machine has armed at
// once (A+B, E+F, G+H).
const maxConcurrentTimers = 2

type armedTimer struct {
	name TimerName // "" marks a free slot.
	at   time.Time
}

// timerSet is a tiny fixed-size set of armed timers. A fixed array instead
// of a map keeps a transaction small and allocation-free, which matters with
// tens of thousands of live transactions per worker.
type timerSet [maxConcurrentTimers]armedTimer

// start arms (or re-arms) the named timer.
func (ts *timerSet) start(name TimerName, at time.Time) {
	free := -1
	for i := range ts {
		if ts[i].name == name {
			ts[i].at = at
			return
		}
		if ts[i].name == "" && free < 0 {
			free = i
		}
	}
	if free < 0 {
		// Unreachable by construction: every state arms at most
		// maxConcurrentTimers timers.
		panic("txn: too many concurrent timers")
	}
	ts[free] = armedTimer{name: name, at: at}
}

func (ts *timerSet) stop(name TimerName) {
	for i := range ts {
		if ts[i].name == name {
			ts[i] = armedTimer{}
		}
	}
}

func (ts *timerSet) stopAll() { *ts = timerSet{} }

// earliest returns the earliest armed deadline, zero if none.
func (ts *timerSet) earliest() time.Time {
	var first time.Time
	for _, t := range ts {
		if t.name != "" && (first.IsZero() || t.at.Before(first)) {
			first = t.at
		}
	}
	return first
}

// popDue disarms and returns the earliest timer due at now, preferring a
// non-retransmit timer on ties.
func (ts *timerSet) popDue(now time.Time) (TimerName, bool) {
	best := -1
	for i, t := range ts {
		if t.name == "" || t.at.After(now) {
			continue
		}
		if best < 0 || t.at.Before(ts[best].at) ||
			(t.at.Equal(ts[best].at) && ts[best].name.retransmits() && !t.name.retransmits()) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	name := ts[best].name
	ts[best] = armedTimer{}
	return name, true
}
