package worker

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/observe"
	"sipvigil/proxy/reply"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// handleResponse matches a response to its client transaction (RFC 3261
// §17.1.3) and processes it as §16.7 describes. Because this runs on the
// worker that owns the Call-ID, in arrival order, and the worker writes the
// forwarded response before it reads the next message, a 180 that arrived
// before a 200 always leaves before it.
func (w *Worker) handleResponse(in transport.Inbound, res *sip.Response, now time.Time) {
	key, err := txn.ClientKey(res)
	b := w.clients[key]
	if err != nil || b == nil {
		w.forwardStateless(in, res)
		return
	}
	deliver, sendAck := b.tx.OnResponse(res, now)
	if b.ctx != nil {
		w.recordResponseIn(b.ctx, in, res, !deliver)
	}
	if sendAck {
		w.sendAck(b, res)
	}
	defer w.afterClientEvent(b)
	if !deliver {
		w.counters.Retransmissions.Add(1)
		return
	}
	if b.probeOwner != nil {
		w.probeAnswered(b, res, now)
		return
	}
	if b.ctx == nil {
		return // the answer to a CANCEL we sent: nothing to relay
	}
	// Pop our Via: what is left is the upstream Via stack.
	res.RemoveHeader("Via")
	w.branchResponse(b, res, now)
}

// afterClientEvent reschedules or removes a client transaction. Once no
// retransmission, CANCEL or ACK can need the request any more (a 2xx, or
// any final of a non-INVITE), the branch lets go of it.
func (w *Worker) afterClientEvent(b *branch) {
	switch st := b.tx.State(); {
	case st == txn.Terminated:
		w.removeBranch(b)
		return
	case st == txn.Accepted, st == txn.Completed && !b.tx.IsInvite():
		b.req, b.data = nil, nil
		b.tx.Compact()
	}
	w.schedule(&b.timed, b.deadline())
}

func (w *Worker) sendAck(b *branch, res *sip.Response) {
	ack := txn.AckFor(b.req, res)
	out := b.out
	out.OnError = nil
	if w.write(&out, ack) == nil && b.ctx != nil {
		w.recordOut(b.ctx.rec, &out, ack, 0, false)
	}
}

// branchResponse applies one delivered response of a branch to its context.
func (w *Worker) branchResponse(b *branch, res *sip.Response, now time.Time) {
	ctx := b.ctx
	code := res.StatusCode
	switch {
	case code < 200:
		if code == 100 {
			return // hop-by-hop; we sent our own 100 upstream
		}
		b.provisional = true
		if b.cancelWanted && !b.cancelSent {
			w.sendCancel(b, now)
		}
		if ctx.tx.IsInvite() && !ctx.timerC.IsZero() {
			ctx.timerC = now.Add(w.opt.TimerC) // §16.7 step 2: reset on 101-199
			w.schedule(&ctx.timed, ctx.deadline())
		}
		if !ctx.finalSent && !w.faultHold(ctx, res) {
			w.respond(ctx, res, now)
		}
	case code < 300:
		b.final = true
		first := !ctx.finalSent
		w.respond(ctx, res, now)
		if first {
			if ctx.tx.IsInvite() && ctx.initial {
				w.counters.DialogsEstablished.Add(1)
			}
			// §16.7 step 10: a 2xx ends the search; cancel the rest.
			w.cancelBranches(ctx, now)
		}
	default:
		b.final = true
		w.branchFinal(ctx, b, res, now)
	}
}

// branchFinal handles a 3xx-6xx (real or synthesized) on one branch.
func (w *Worker) branchFinal(ctx *serverCtx, b *branch, res *sip.Response, now time.Time) {
	if b.to.hop != nil {
		switch res.StatusCode {
		case 408, 503:
			w.opt.Health.Fail(b.to.hop)
		}
	}
	if ctx.finalSent {
		return
	}
	w.recordBest(ctx, res)
	if res.StatusCode >= 600 {
		// §16.7 step 5: a 6xx cancels the others and stops the search.
		ctx.got6xx = true
		w.cancelBranches(ctx, now)
	}
	if !ctx.cancelled && !ctx.got6xx && w.failsOver(b, res.StatusCode) && w.nextBranch(ctx, now) {
		return
	}
	if !w.anyPending(ctx) {
		w.finish(ctx, now)
	}
}

// failsOver reports whether a final on b moves on to the next hop: a 408 or
// a transport-level 503 always does; other codes as the destination set says.
func (w *Worker) failsOver(b *branch, code int) bool {
	if b.to.hop == nil {
		return false
	}
	set := w.sets[b.to.hop.Set]
	if set == nil {
		return code == 408 || code == 503
	}
	return code == 408 || set.FailoverOn(code)
}

// recordBest keeps the best final response so far (§16.7 step 6): any 6xx
// wins; otherwise the lowest class wins, first come first kept.
func (w *Worker) recordBest(ctx *serverCtx, res *sip.Response) {
	if ctx.best == nil {
		ctx.best = res
		return
	}
	bc, rc := ctx.best.StatusCode/100, res.StatusCode/100
	switch {
	case bc == 6:
	case rc == 6:
		ctx.best = res
	case rc < bc:
		ctx.best = res
	}
}

// finish sends the best final response once no branch is pending and no
// failover is left.
func (w *Worker) finish(ctx *serverCtx, now time.Time) {
	if ctx.finalSent {
		return
	}
	best := ctx.best
	switch {
	case best == nil && ctx.cancelled:
		best = reply.New(ctx.req, 487, "Request Terminated")
	case best == nil:
		best = reply.New(ctx.req, 408, "Request Timeout")
	case ctx.cancelled && best.StatusCode == 408:
		best = reply.New(ctx.req, 487, "Request Terminated")
	case best.StatusCode == 503:
		// §16.7 step 6: a 503 from downstream would make the upstream
		// client think *we* are unavailable.
		best = reply.New(ctx.req, 500, "Server Internal Error")
	}
	w.respond(ctx, best, now)
}

func (w *Worker) anyPending(ctx *serverCtx) bool {
	for _, b := range ctx.branches {
		if !b.final {
			return true
		}
	}
	return false
}

// cancelBranches cancels every pending INVITE branch of ctx. RFC 3261 §9.1:
// a branch that has had no provisional response must not be cancelled yet;
// the CANCEL goes out when its first 1xx arrives.
func (w *Worker) cancelBranches(ctx *serverCtx, now time.Time) {
	if !ctx.tx.IsInvite() {
		return
	}
	for _, b := range ctx.branches {
		if b.final || b.cancelSent {
			continue
		}
		if b.provisional {
			w.sendCancel(b, now)
		} else {
			b.cancelWanted = true
		}
	}
}

// sendCancel sends a CANCEL for b as its own client transaction.
func (w *Worker) sendCancel(b *branch, now time.Time) {
	b.cancelSent = true
	cancel := txn.CancelFor(b.req)
	cb := w.newBranch(cancel, b.to, w.serialize(cancel), now)
	var rec *observe.Txn
	if b.ctx != nil {
		rec = b.ctx.rec
	}
	if err := w.transmit(cb, rec, 0, false); err != nil {
		cb.tx.OnTransportError(now)
		w.removeBranch(cb)
	}
}

// clientTimer fires a client transaction's timers.
func (w *Worker) clientTimer(b *branch, now time.Time) {
	if !b.probeExpiry.IsZero() && !b.probeExpiry.After(now) {
		w.probeTimedOut(b, now)
		return
	}
	r := b.tx.OnTimer(now)
	if r.Retransmit {
		w.counters.RetransmitsSent.Add(1)
		var rec *observe.Txn
		if b.ctx != nil {
			rec = b.ctx.rec
		}
		if err := w.transmit(b, rec, 0, true); err != nil {
			b.tx.OnTransportError(now)
			w.branchTransportError(b, now)
			return
		}
	}
	if r.Timeout {
		w.counters.Timeouts.Add(1)
		w.branchGaveUp(b, 408, "Request Timeout", now)
	}
	w.afterClientEvent(b)
}

// branchTransportError: §16.9, act as if a 503 had been received.
func (w *Worker) branchTransportError(b *branch, now time.Time) {
	b.tx.OnTransportError(now)
	w.branchGaveUp(b, 503, "Service Unavailable", now)
	w.afterClientEvent(b)
}

// branchGaveUp synthesizes a final response for a branch that timed out or
// failed at the transport.
func (w *Worker) branchGaveUp(b *branch, code int, reason string, now time.Time) {
	if b.probeOwner != nil {
		w.probeFailed(b, now)
		return
	}
	if b.ctx == nil || b.final {
		return
	}
	b.final = true
	if b.ctx.finalSent {
		return // answered already; nothing left to decide
	}
	w.branchFinal(b.ctx, b, reply.New(b.ctx.req, code, reason), now)
}

// timerCFired implements §16.8: cancel branches that had a provisional
// response, and treat the others as if they had answered 408.
func (w *Worker) timerCFired(ctx *serverCtx, now time.Time) {
	w.counters.TimerC.Add(1)
	for _, b := range ctx.branches {
		if b.final {
			continue
		}
		if b.provisional {
			if !b.cancelSent {
				w.sendCancel(b, now)
			}
			continue
		}
		b.final = true
		w.branchFinal(ctx, b, reply.New(ctx.req, 408, "Request Timeout"), now)
	}
}

// forwardStateless relays a response that matches no client transaction:
// a 2xx retransmission after the transaction ended, or a stray (RFC 6026
// §8.3, RFC 3261 §16.11). Our Via must be on top; otherwise it is dropped.
func (w *Worker) forwardStateless(in transport.Inbound, res *sip.Response) {
	v := res.Via()
	if v == nil || !w.isOurs(v.Host, v.Port) {
		w.counters.StrayDropped.Add(1)
		return
	}
	fwd := res.Clone()
	fwd.RemoveHeader("Via")
	next := fwd.Via()
	if next == nil {
		w.counters.StrayDropped.Add(1)
		return
	}
	t, ok := viaTarget(next)
	if !ok {
		w.counters.StrayDropped.Add(1)
		return
	}
	l, found := w.local(t.proto, t.addr.Addr())
	if !found {
		w.counters.StrayDropped.Add(1)
		return
	}
	out := transport.Outbound{Proto: t.proto, From: l.Addr, To: t.addr, Socket: w.opt.Index}
	if err := w.write(&out, fwd); err == nil {
		w.counters.StatelessForwards.Add(1)
		if w.opt.Txns != nil {
			rec := w.newRecord(observe.TxnStateless, res, in.Mono)
			w.recordIn(rec, in, res)
			w.recordOut(rec, &out, fwd, 1, false)
			rec.End = observe.Monotonic()
			w.opt.Txns.Txn(rec)
		}
	}
}
