package txn

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// Server is a server transaction: RFC 3261 §17.2.1 (INVITE, amended by
// RFC 6026 §7.1) and §17.2.2 (non-INVITE). It is not safe for concurrent
// use; its owner serialises all calls.
type Server struct {
	req      *sip.Request
	invite   bool
	reliable bool
	timers   Timers
	state    State
	// last is the most recent response passed to the transport: the one a
	// request retransmission is answered with, and the one Timer G resends.
	last *sip.Response
	// gInterval is the interval Timer G was last armed with.
	gInterval time.Duration
	pending   timerSet
}

// ServerTimerResult tells the owner what OnTimer decided.
type ServerTimerResult struct {
	// Resend, when non-nil, is the final response to retransmit (Timer G).
	Resend *sip.Response
	// Timeout reports that Timer H fired: the ACK never came. The proxy only
	// logs or counts it; there is nobody left to tell.
	Timeout bool
	// Terminated reports that the transaction ended: forget it.
	Terminated bool
	// Fired lists the timers processed, in order.
	Fired []TimerName
}

// NewServer creates the server transaction for a request that matched no
// existing one. INVITE starts in Proceeding (the owner should send 100
// Trying through Respond right away, RFC 3261 §16.2 / §17.2.1), every other
// method in Trying. ACK must not create a server transaction. reliable
// selects the TCP/TLS/SCTP timer values. The request is retained, not copied.
func NewServer(req *sip.Request, reliable bool, t Timers, now time.Time) *Server {
	s := &Server{
		req:      req,
		invite:   req != nil && req.Method == sip.INVITE,
		reliable: reliable,
		timers:   t.normalized(),
		state:    Trying,
	}
	if s.invite {
		s.state = Proceeding
	}
	return s
}

// Request returns the request that created the transaction.
func (s *Server) Request() *sip.Request { return s.req }

// IsInvite reports whether this is an INVITE server transaction.
func (s *Server) IsInvite() bool { return s.invite }

// Reliable reports whether the transaction runs over a reliable transport.
func (s *Server) Reliable() bool { return s.reliable }

// State returns the current state.
func (s *Server) State() State { return s.state }

// LastResponse returns the last response that Respond accepted for
// transmission, nil if none.
func (s *Server) LastResponse() *sip.Response { return s.last }

// Deadline returns when OnTimer must next be called, zero if no timer is
// pending (which is always the case once Terminated).
func (s *Server) Deadline() time.Time { return s.pending.earliest() }

// Respond records a response the TU wants to send and reports whether it
// must be transmitted now. A false result means the transaction state does
// not allow that response any more (e.g. a second final response) and the
// owner must drop it.
func (s *Server) Respond(res *sip.Response, now time.Time) bool {
	if res == nil {
		return false
	}
	class := statusClass(res.StatusCode)
	if class == 0 {
		return false
	}
	if s.invite {
		return s.respondInvite(res, class, now)
	}
	return s.respondNonInvite(res, class, now)
}

func (s *Server) respondInvite(res *sip.Response, class int, now time.Time) bool {
	switch s.state {
	case Proceeding:
		s.last = res
		switch class {
		case 1:
		case 2:
			// RFC 6026 §7.1: stay around to absorb INVITE retransmissions
			// and let the TU forward 2xx retransmissions.
			s.state = Accepted
			s.pending.start(TimerL, now.Add(s.timers.transactionTimeout()))
		default:
			s.state = Completed
			if !s.reliable {
				s.gInterval = s.timers.T1
				s.pending.start(TimerG, now.Add(s.gInterval))
			}
			s.pending.start(TimerH, now.Add(s.timers.transactionTimeout()))
		}
		return true
	case Accepted:
		// A proxy forwards every 2xx it receives (retransmissions and other
		// forks) statelessly through the Accepted transaction.
		if class == 2 {
			s.last = res
			return true
		}
	}
	return false
}

func (s *Server) respondNonInvite(res *sip.Response, class int, now time.Time) bool {
	if s.state != Trying && s.state != Proceeding {
		return false
	}
	s.last = res
	if class == 1 {
		s.state = Proceeding
		return true
	}
	s.state = Completed
	s.pending.start(TimerJ, now.Add(s.timerJ()))
	return true
}

func (s *Server) timerJ() time.Duration {
	if s.reliable {
		return 0
	}
	return s.timers.transactionTimeout()
}

// OnRequestRetransmission handles a retransmission of the request and
// returns the response to send again, or nil when the retransmission is
// simply absorbed: in Trying (nothing sent yet), in Accepted (RFC 6026: the
// 2xx is retransmitted end to end, not by us), Confirmed and Terminated.
func (s *Server) OnRequestRetransmission(now time.Time) *sip.Response {
	switch s.state {
	case Proceeding, Completed:
		return s.last
	}
	return nil
}

// OnAck handles an ACK matched to this INVITE transaction. It returns true
// when the transaction absorbs it (the ACK for a non-2xx final, in Completed
// or Confirmed) and false when the owner must route it itself, as for the
// end-to-end ACK of a 2xx in Accepted.
func (s *Server) OnAck(now time.Time) bool {
	if !s.invite {
		return false
	}
	switch s.state {
	case Completed:
		s.state = Confirmed
		s.pending.stop(TimerG)
		s.pending.stop(TimerH)
		s.pending.start(TimerI, now.Add(s.timerI()))
		return true
	case Confirmed:
		return true
	}
	return false
}

func (s *Server) timerI() time.Duration {
	if s.reliable {
		return 0
	}
	return s.timers.T4
}

// OnTimer processes every timer due at now, in deadline order.
func (s *Server) OnTimer(now time.Time) ServerTimerResult {
	var r ServerTimerResult
	for {
		name, ok := s.pending.popDue(now)
		if !ok {
			break
		}
		r.Fired = append(r.Fired, name)
		switch name {
		case TimerG:
			if s.state == Completed {
				r.Resend = s.last
				s.gInterval = min(2*s.gInterval, s.timers.T2)
				s.pending.start(TimerG, now.Add(s.gInterval))
			}
		case TimerH:
			if s.state == Completed {
				r.Timeout = true
				s.terminate()
			}
		case TimerI:
			if s.state == Confirmed {
				s.terminate()
			}
		case TimerJ:
			if s.state == Completed {
				s.terminate()
			}
		case TimerL:
			if s.state == Accepted {
				s.terminate()
			}
		}
	}
	if s.state == Terminated {
		// A retransmission due in the same wake-up as the end of the
		// transaction is pointless. Terminated is reported on every call
		// once ended, so a stale heap entry still leads to removal.
		r.Resend = nil
		r.Terminated = true
	}
	return r
}

// OnTransportError reports that the transport failed to deliver a response
// of this transaction. The transaction moves to Terminated, except in
// Accepted: RFC 6026 §7.1 keeps it there (Timer L still runs) so that
// retransmissions of the INVITE keep being absorbed.
func (s *Server) OnTransportError(now time.Time) {
	if s.state == Accepted {
		return
	}
	s.terminate()
}

func (s *Server) terminate() {
	s.state = Terminated
	s.pending.stopAll()
}

// statusClass returns the first digit of a valid status code, 0 otherwise.
func statusClass(code int) int {
	if code < 100 || code > 699 {
		return 0
	}
	return code / 100
}

// Compact drops what the transaction no longer needs, so that a proxy
// holding thousands of transactions for 64*T1 after their final response
// (RFC 6026 Accepted, Completed) does not also hold their messages: the
// request always (Request returns nil afterwards), and the last response
// unless a retransmitted request may still need it (Proceeding, Completed).
func (s *Server) Compact() {
	s.req = nil
	switch s.state {
	case Proceeding, Completed:
	default:
		s.last = nil
	}
}
