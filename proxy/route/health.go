package route

import (
	"sync/atomic"
	"time"
)

// Health tracks up/down state per hop. Every method is safe for
// concurrent use; Up is a single atomic load so workers can consult it on
// every request.
//
// Thresholds come from each hop's set (probe.failures_to_down,
// probe.successes_to_up), like Kamailio's ds_probing_threshold and
// ds_inactive_threshold: a hop goes down after that many consecutive
// failures and comes back after that many consecutive successes.
type Health struct {
	states []hopState // indexed by Hop.id
}

type hopState struct {
	hop            *Hop
	failuresToDown uint64
	successesToUp  uint64
	passive        bool // count passive failures (only if probing can undo them)

	// word packs down flag and both consecutive counters so a Report is
	// one CAS and "changed" is reported exactly once even when the prober
	// and several workers report the same hop at the same time.
	word    atomic.Uint64
	lastRTT atomic.Int64
}

const (
	downBit   = 1 << 63
	countMask = 1<<31 - 1 // each counter saturates at 31 bits
	succShift = 32
)

func unpack(w uint64) (down bool, fails, succs uint64) {
	return w&downBit != 0, w & countMask, (w >> succShift) & countMask
}

func pack(down bool, fails, succs uint64) uint64 {
	w := min(fails, countMask) | min(succs, countMask)<<succShift
	if down {
		w |= downBit
	}
	return w
}

// NewHealth returns health state for every hop of r, all up.
func NewHealth(r *Router) *Health {
	h := &Health{states: make([]hopState, len(r.hops))}
	for _, s := range r.sets {
		for _, hop := range s.Hops {
			st := &h.states[hop.id]
			st.hop = hop
			st.failuresToDown = uint64(max(s.Probe.FailuresToDown, 1))
			st.successesToUp = uint64(max(s.Probe.SuccessesToUp, 1))
			st.passive = s.Probe.Enabled
		}
	}
	return h
}

// state returns the slot for hop, or nil if hop does not belong to the
// Router h was built from (e.g. a stale hop held across a reload).
func (h *Health) state(hop *Hop) *hopState {
	if h == nil || hop == nil || hop.id >= len(h.states) || h.states[hop.id].hop != hop {
		return nil
	}
	return &h.states[hop.id]
}

// Up reports whether hop is considered alive. A nil Health, or a hop
// unknown to it, counts as up: without information we try the hop.
func (h *Health) Up(hop *Hop) bool {
	st := h.state(hop)
	return st == nil || st.word.Load()&downBit == 0
}

// Report records one probe outcome and returns the resulting state and
// whether this call flipped it (the caller logs transitions).
//
// ok should be ProbeOK(status) for a response, false for a timeout or a
// transport error. rtt is recorded for successful probes only. Reports
// for hops unknown to h are ignored and return (true, false).
func (h *Health) Report(hop *Hop, ok bool, rtt time.Duration) (up, changed bool) {
	st := h.state(hop)
	if st == nil {
		return true, false
	}
	if ok {
		st.lastRTT.Store(int64(rtt))
	}
	return st.record(ok)
}

// Fail records a passive failure: a real request to hop timed out or hit
// a transport error. It counts as one failed probe. It is ignored for
// sets without probing, because nothing would ever bring the hop back
// up; such hops stay up and failover alone handles the error.
func (h *Health) Fail(hop *Hop) (up, changed bool) {
	st := h.state(hop)
	if st == nil || !st.passive {
		return h.Up(hop), false
	}
	return st.record(false)
}

func (st *hopState) record(ok bool) (up, changed bool) {
	for {
		old := st.word.Load()
		down, fails, succs := unpack(old)
		if ok {
			fails, succs = 0, succs+1
		} else {
			fails, succs = fails+1, 0
		}
		newDown := down
		switch {
		case !down && fails >= st.failuresToDown:
			newDown = true
		case down && succs >= st.successesToUp:
			newDown = false
		}
		if st.word.CompareAndSwap(old, pack(newDown, fails, succs)) {
			return !newDown, newDown != down
		}
	}
}

// HopState is a point-in-time view of one hop, for metrics and status.
type HopState struct {
	Hop       *Hop
	Up        bool
	LastRTT   time.Duration // of the last successful probe; 0 if none
	Failures  int           // consecutive failures
	Successes int           // consecutive successes
}

// Snapshot returns the state of every hop in Router.Hops order. Each
// entry is consistent on its own; entries are not taken atomically
// together.
func (h *Health) Snapshot() []HopState {
	out := make([]HopState, len(h.states))
	for i := range h.states {
		st := &h.states[i]
		down, fails, succs := unpack(st.word.Load())
		out[i] = HopState{
			Hop:       st.hop,
			Up:        !down,
			LastRTT:   time.Duration(st.lastRTT.Load()),
			Failures:  int(fails),
			Successes: int(succs),
		}
	}
	return out
}
