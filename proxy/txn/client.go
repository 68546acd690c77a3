package txn

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// Client is a client transaction: RFC 3261 §17.1.1 (INVITE, amended by
// RFC 6026 §7.2) and §17.1.2 (non-INVITE). It is not safe for concurrent
// use; its owner serialises all calls.
type Client struct {
	req      *sip.Request
	invite   bool
	reliable bool
	timers   Timers
	state    State
	// retransmitInterval is the interval Timer A or E was last armed with.
	retransmitInterval time.Duration
	pending            timerSet
}

// ClientTimerResult tells the owner what OnTimer decided.
type ClientTimerResult struct {
	// Retransmit: send Request() again (Timer A or E).
	Retransmit bool
	// Timeout: Timer B or F fired. The TU must act as if it received a 408
	// (RFC 3261 §16.7 step 2 for a proxy). The transaction is Terminated.
	Timeout bool
	// Terminated reports that the transaction ended: forget it.
	Terminated bool
	// Fired lists the timers processed, in order.
	Fired []TimerName
}

// NewClient creates a client transaction for a request the owner is sending
// now. INVITE starts in Calling (Timer A only if unreliable, Timer B),
// other methods in Trying (Timer E only if unreliable, Timer F). ACK must
// not create a client transaction. The request is retained, not copied.
func NewClient(req *sip.Request, reliable bool, t Timers, now time.Time) *Client {
	c := &Client{
		req:      req,
		invite:   req != nil && req.Method == sip.INVITE,
		reliable: reliable,
		timers:   t.normalized(),
	}
	retransmit, timeout := TimerE, TimerF
	c.state = Trying
	if c.invite {
		retransmit, timeout = TimerA, TimerB
		c.state = Calling
	}
	if !reliable {
		c.retransmitInterval = c.timers.T1
		c.pending.start(retransmit, now.Add(c.retransmitInterval))
	}
	c.pending.start(timeout, now.Add(c.timers.transactionTimeout()))
	return c
}

// Request returns the request this transaction sends.
func (c *Client) Request() *sip.Request { return c.req }

// IsInvite reports whether this is an INVITE client transaction.
func (c *Client) IsInvite() bool { return c.invite }

// Reliable reports whether the transaction runs over a reliable transport.
func (c *Client) Reliable() bool { return c.reliable }

// State returns the current state.
func (c *Client) State() State { return c.state }

// Deadline returns when OnTimer must next be called, zero if no timer is
// pending (which is always the case once Terminated).
func (c *Client) Deadline() time.Time { return c.pending.earliest() }

// OnResponse handles a response matched to this transaction. deliver means
// pass it to the TU; sendAck means the owner must send AckFor(Request(),
// res) — for an INVITE non-2xx final, both on its first arrival and on every
// retransmission of it (then with deliver=false). Anything else is absorbed.
func (c *Client) OnResponse(res *sip.Response, now time.Time) (deliver, sendAck bool) {
	if res == nil {
		return false, false
	}
	class := statusClass(res.StatusCode)
	if class == 0 {
		return false, false
	}
	if c.invite {
		return c.onInviteResponse(class, now)
	}
	return c.onNonInviteResponse(class, now), false
}

func (c *Client) onInviteResponse(class int, now time.Time) (deliver, sendAck bool) {
	switch c.state {
	case Calling, Proceeding:
		// Any response proves the request arrived, and Timer B only
		// guards Calling: from here on the proxy's Timer C limits how
		// long the branch may ring.
		c.pending.stop(TimerA)
		c.pending.stop(TimerB)
		switch class {
		case 1:
			c.state = Proceeding
			return true, false
		case 2:
			// RFC 6026 §7.2: wait for 2xx retransmissions and other
			// forks' 2xx, which must all reach the TU.
			c.state = Accepted
			c.pending.start(TimerM, now.Add(c.timers.transactionTimeout()))
			return true, false
		default:
			c.state = Completed
			c.pending.start(TimerD, now.Add(c.timers.timerD(c.reliable)))
			return true, true
		}
	case Accepted:
		return class == 2, false
	case Completed:
		// A retransmitted non-2xx final: our ACK was lost, send it again.
		return false, class >= 3
	}
	return false, false
}

func (c *Client) onNonInviteResponse(class int, now time.Time) (deliver bool) {
	if c.state != Trying && c.state != Proceeding {
		return false
	}
	if class == 1 {
		c.state = Proceeding
		return true
	}
	c.state = Completed
	c.pending.stop(TimerE)
	c.pending.stop(TimerF)
	c.pending.start(TimerK, now.Add(c.timerK()))
	return true
}

func (c *Client) timerK() time.Duration {
	if c.reliable {
		return 0
	}
	return c.timers.T4
}

// OnTimer processes every timer due at now, in deadline order.
func (c *Client) OnTimer(now time.Time) ClientTimerResult {
	var r ClientTimerResult
	for {
		name, ok := c.pending.popDue(now)
		if !ok {
			break
		}
		r.Fired = append(r.Fired, name)
		switch name {
		case TimerA:
			if c.state == Calling {
				r.Retransmit = true
				c.retransmitInterval *= 2
				c.pending.start(TimerA, now.Add(c.retransmitInterval))
			}
		case TimerE:
			if c.state == Trying || c.state == Proceeding {
				r.Retransmit = true
				if c.state == Proceeding {
					// §17.1.2.2: in Proceeding the request is resent
					// every T2, the server already has it.
					c.retransmitInterval = c.timers.T2
				} else {
					c.retransmitInterval = min(2*c.retransmitInterval, c.timers.T2)
				}
				c.pending.start(TimerE, now.Add(c.retransmitInterval))
			}
		case TimerB:
			if c.state == Calling {
				r.Timeout = true
				c.terminate()
			}
		case TimerF:
			if c.state == Trying || c.state == Proceeding {
				r.Timeout = true
				c.terminate()
			}
		case TimerD, TimerK:
			if c.state == Completed {
				c.terminate()
			}
		case TimerM:
			if c.state == Accepted {
				c.terminate()
			}
		}
	}
	if c.state == Terminated {
		// A retransmission due in the same wake-up as the end of the
		// transaction is pointless. Terminated is reported on every call
		// once ended, so a stale heap entry still leads to removal.
		r.Retransmit = false
		r.Terminated = true
	}
	return r
}

// OnTransportError reports that the transport failed to send the request
// (or the ACK). The transaction moves to Terminated; the TU treats it like a
// timeout and decides between 408 and 503.
func (c *Client) OnTransportError(now time.Time) {
	c.terminate()
}

func (c *Client) terminate() {
	c.state = Terminated
	c.pending.stopAll()
}

// Compact drops the request once nothing can retransmit it (after a
// final response); Request returns nil afterwards. It does nothing while
// Timer A or E may still fire.
func (c *Client) Compact() {
	switch c.state {
	case Calling, Trying, Proceeding:
	default:
		c.req = nil
	}
}
