// Package dispatch hands every parsed SIP message to the one worker that owns
// its Call-ID.
//
// Ordering is decided here. Kamailio and OpenSIPS lose the order of one
// dialog's messages because a socket's datagrams fan out to whichever worker
// is idle. The dispatcher instead runs inline on the socket's single reader
// goroutine and hashes the Call-ID to a fixed worker, so the order in which a
// socket delivered two messages of one dialog is the order in which their
// worker sees them.
//
// The dispatcher never blocks the reader. A worker's inbox is bounded; when
// it fills up, new dialogs are turned away first (503 with Retry-After) while
// responses and in-dialog requests may still use the headroom reserved for
// them, so calls already up keep working under overload.
package dispatch

import (
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/reply"
	"sipvigil/proxy/transport"
)

// Inbox is the part of a worker the dispatcher needs.
type Inbox interface {
	// Offer queues a message without blocking. reserved=false asks for a
	// slot below the inbox's high-water mark (new dialogs); reserved=true may
	// use the whole inbox (responses, in-dialog requests, CANCEL, ACK).
	Offer(in transport.Inbound, reserved bool) bool
}

// Sender writes one serialized message; *transport.Transport implements it.
type Sender interface {
	Send(out transport.Outbound) error
}

// Picker maps a Call-ID to a worker index. The seed is chosen at startup so
// that a peer cannot aim all its Call-IDs at one worker.
type Picker struct {
	seed maphash.Seed
	n    uint64
}

// NewPicker returns a picker over n workers.
func NewPicker(n int) Picker { return Picker{seed: maphash.MakeSeed(), n: uint64(n)} }

// Pick returns the index of the worker that owns callID.
func (p Picker) Pick(callID string) int {
	return int(maphash.String(p.seed, callID) % p.n)
}

// Counters are the dispatcher's own outcomes; read with Snapshot.
type Counters struct {
	Dispatched        atomic.Uint64
	NoCallIDRequests  atomic.Uint64 // answered 400
	NoCallIDResponses atomic.Uint64 // dropped
	BadRequests       atomic.Uint64 // other 400s (no Via, no CSeq)
	OverloadRejected  atomic.Uint64 // answered 503
	OverloadDropped   atomic.Uint64 // responses and ACKs dropped on a full inbox
	DrainRejected     atomic.Uint64 // new dialogs answered 503 during shutdown
	BadMessages       atomic.Uint64 // unparseable bytes (transport reports)
}

// CountersSnapshot is a point-in-time copy of Counters.
type CountersSnapshot struct {
	Dispatched, NoCallIDRequests, NoCallIDResponses, BadRequests,
	OverloadRejected, OverloadDropped, DrainRejected, BadMessages uint64
	BadByReason map[string]uint64
}

// Dispatcher implements transport.Handler.
type Dispatcher struct {
	workers    []Inbox
	picker     Picker
	out        Sender
	retryAfter string
	log        *slog.Logger
	draining   atomic.Bool
	counters   Counters
	// reasons is the transport's fixed set of bad-input reasons plus
	// "other"; badCounts counts each, same index.
	reasons   []string
	badCounts []atomic.Uint64
}

// New returns a dispatcher over workers. retryAfter is the Retry-After sent
// with overload 503s.
func New(workers []Inbox, picker Picker, out Sender, retryAfter time.Duration, log *slog.Logger) *Dispatcher {
	reasons := append(transport.BadReasons(), "other")
	return &Dispatcher{workers: workers, picker: picker, out: out, retryAfter: reply.RetryAfter(retryAfter), log: log,
		reasons: reasons, badCounts: make([]atomic.Uint64, len(reasons))}
}

// Bind attaches the workers and the sender. The transport needs the
// dispatcher as its handler before it exists as a sender, so the two are
// tied together here, before Serve starts any reader.
func (d *Dispatcher) Bind(workers []Inbox, out Sender) {
	d.workers = workers
	d.out = out
}

// Drain makes the dispatcher answer every new dialog with 503 from now on,
// while traffic of existing dialogs and transactions still flows.
func (d *Dispatcher) Drain() { d.draining.Store(true) }

// HandleInbound is called inline by a socket's reader goroutine.
func (d *Dispatcher) HandleInbound(in transport.Inbound) {
	cid := in.Msg.CallID()
	req, isReq := in.Msg.(*sip.Request)
	if cid == nil || *cid == "" {
		if !isReq {
			d.counters.NoCallIDResponses.Add(1)
			return
		}
		d.counters.NoCallIDRequests.Add(1)
		d.reject(in, req, 400, "Missing Call-ID", "")
		return
	}
	if isReq && (req.Via() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil) {
		d.counters.BadRequests.Add(1)
		d.reject(in, req, 400, "Missing Via, CSeq, From or To", "")
		return
	}
	initial := isReq && isInitial(req)
	if initial && d.draining.Load() {
		d.counters.DrainRejected.Add(1)
		d.reject(in, req, 503, "Shutting Down", d.retryAfter)
		return
	}
	w := d.workers[d.picker.Pick(string(*cid))]
	if w.Offer(in, !initial) {
		d.counters.Dispatched.Add(1)
		return
	}
	if isReq && !req.IsAck() {
		d.counters.OverloadRejected.Add(1)
		d.reject(in, req, 503, "Overloaded", d.retryAfter)
		return
	}
	d.counters.OverloadDropped.Add(1)
}

// HandleBad counts input that never became a message. There is nothing to
// answer: without a parsed Via there is no address a response could use.
func (d *Dispatcher) HandleBad(proto transport.Proto, _, remote netip.AddrPort, reason string, err error) {
	d.counters.BadMessages.Add(1)
	i := len(d.reasons) - 1
	for j, r := range d.reasons {
		if r == reason {
			i = j
			break
		}
	}
	d.badCounts[i].Add(1)
	d.log.Debug("dropped unparseable message", "proto", proto, "remote", remote, "reason", reason, "err", err)
}

// reject answers req statelessly from the reader goroutine. Used only for
// requests that never reach a worker, so there is no transaction to keep.
func (d *Dispatcher) reject(in transport.Inbound, req *sip.Request, code int, reason, retryAfter string) {
	if req.IsAck() {
		return // an ACK is never answered
	}
	res := reply.WithRetryAfter(reply.New(req, code, reason), retryAfter)
	if req.Via() == nil {
		// No Via: RFC 3261 gives no address to answer; the best effort is
		// the packet's source, which is where a broken peer listens.
		res.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: in.Proto.String(),
			Host: in.Remote.Addr().String(), Port: int(in.Remote.Port()), Params: sip.NewParams()})
	}
	out := reply.Where(in, req.Via())
	out.Data = []byte(res.String())
	if err := d.out.Send(out); err != nil {
		d.log.Debug("stateless reply failed", "code", code, "to", out.To, "err", err)
	}
}

// Snapshot returns the counters.
func (d *Dispatcher) Snapshot() CountersSnapshot {
	s := CountersSnapshot{
		Dispatched:        d.counters.Dispatched.Load(),
		NoCallIDRequests:  d.counters.NoCallIDRequests.Load(),
		NoCallIDResponses: d.counters.NoCallIDResponses.Load(),
		BadRequests:       d.counters.BadRequests.Load(),
		OverloadRejected:  d.counters.OverloadRejected.Load(),
		OverloadDropped:   d.counters.OverloadDropped.Load(),
		DrainRejected:     d.counters.DrainRejected.Load(),
		BadMessages:       d.counters.BadMessages.Load(),
		BadByReason:       make(map[string]uint64, len(d.reasons)),
	}
	for i, r := range d.reasons {
		s.BadByReason[r] = d.badCounts[i].Load()
	}
	return s
}

// isInitial reports whether req would start a new dialog or stand-alone
// transaction: no To-tag, and not a CANCEL or ACK (those belong to an INVITE
// transaction that is already in the worker).
func isInitial(req *sip.Request) bool {
	if req.IsAck() || req.IsCancel() {
		return false
	}
	to := req.To()
	return to == nil || !to.Params.Has("tag")
}
