package worker

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/reply"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// handleRequest is the entry for every request the worker owns.
func (w *Worker) handleRequest(in transport.Inbound, req *sip.Request, now time.Time) {
	if req.IsAck() {
		w.handleAck(in, req, now)
		return
	}
	key, err := txn.ServerKey(req)
	if err != nil {
		w.statelessReply(in, req, 400, "Missing Via Branch")
		return
	}
	if ctx := w.servers[key]; ctx != nil {
		// A retransmission: answer from transaction state, never re-route.
		w.counters.Retransmissions.Add(1)
		if ctx.rec != nil {
			ctx.rec.Msgs[w.recordIn(ctx.rec, in, req)].Retransmission = true
		}
		if res := ctx.tx.OnRequestRetransmission(now); res != nil {
			w.sendResponse(ctx, res, true)
		}
		return
	}

	ctx := w.newServerCtx(key, in, req, now)
	if req.IsCancel() {
		w.handleCancel(ctx, now)
		return
	}
	if req.IsInvite() {
		w.respond(ctx, reply.New(req, 100, "Trying"), now)
	}

	// RFC 3261 §16.3 request validation.
	if mf := req.MaxForwards(); mf != nil && *mf == 0 {
		if req.Method == sip.OPTIONS && w.addressedToUs(req) {
			w.respondLocal(ctx, 200, "OK", now)
			return
		}
		w.counters.TooManyHops.Add(1)
		w.respondLocal(ctx, 483, "Too Many Hops", now)
		return
	}
	if h := req.GetHeader("Proxy-Require"); h != nil {
		res := reply.New(req, 420, "Bad Extension")
		res.AppendHeader(sip.NewHeader("Unsupported", h.Value()))
		w.respond(ctx, res, now)
		return
	}
	ctx.loopHash = loopHash(req)
	if w.looped(req, ctx.loopHash) {
		w.counters.Loops.Add(1)
		w.respondLocal(ctx, 482, "Loop Detected", now)
		return
	}
	if q := w.opt.Router.SuspendQueue(req); q != "" {
		if qb := w.opt.Queues[q]; qb != nil {
			w.suspendOnQueue(ctx, qb, now)
			return
		}
	}
	w.routeRequest(ctx, now)
}

func (w *Worker) newServerCtx(key string, in transport.Inbound, req *sip.Request, now time.Time) *serverCtx {
	ctx := &serverCtx{
		timed:   timed{index: -1},
		key:     key,
		tx:      txn.NewServer(req, in.Proto == transport.TCP, w.opt.Timers, now),
		req:     req,
		reply:   reply.Where(in, req.Via()),
		inLocal: w.localFor(in.Proto, in.Local),
		initial: !req.To().Params.Has("tag"),
		callID:  string(*req.CallID()),
	}
	ctx.reply.Socket = w.opt.Index
	ctx.fire = func(w *Worker, now time.Time) { w.serverTimer(ctx, now) }
	w.servers[key] = ctx
	if req.IsInvite() {
		ctx.inviteID = inviteID(req)
		w.invites[ctx.inviteID] = ctx
	}
	w.recordServer(ctx, in, req)
	w.pending++
	w.counters.ServerTxCreated.Add(1)
	w.counters.ActiveServer.Add(1)
	w.schedule(&ctx.timed, ctx.deadline())
	return ctx
}

// inviteID identifies an INVITE server transaction by its branch and sent-by
// so that its CANCEL and non-2xx ACK (same branch, other method) find it.
func inviteID(req *sip.Request) string {
	v := req.Via()
	if v == nil {
		return ""
	}
	b, _ := v.Params.Get("branch")
	return b + "|" + strings.ToLower(v.Host) + "|" + strconv.Itoa(v.Port)
}

// addressedToUs reports a request for the proxy itself: no user part and our
// host:port in the Request-URI, and no Route left to follow.
func (w *Worker) addressedToUs(req *sip.Request) bool {
	return req.Recipient.User == "" && w.isOurs(req.Recipient.Host, req.Recipient.Port) && topRoute(req) == nil
}

// handleCancel implements RFC 3261 §16.10. The CANCEL gets its own server
// transaction (so its retransmissions get the same 200), the INVITE's
// pending branches are cancelled, and the 487 that comes back from
// downstream is relayed. A CANCEL for an INVITE we do not know gets 481.
func (w *Worker) handleCancel(ctx *serverCtx, now time.Time) {
	inv := w.invites[inviteID(ctx.req)]
	if inv == nil || inv.tx.State() == txn.Terminated {
		w.respondLocal(ctx, 481, "Call/Transaction Does Not Exist", now)
		return
	}
	w.counters.Cancels.Add(1)
	w.respondLocal(ctx, 200, "OK", now)
	if inv.finalSent {
		return
	}
	inv.cancelled = true
	w.cancelBranches(inv, now)
	if !w.anyPending(inv) {
		w.respondLocal(inv, 487, "Request Terminated", now)
	}
}

// handleAck: an ACK that matches an INVITE server transaction in Completed
// is the hop-by-hop ACK for our non-2xx and is absorbed (we already sent our
// own ACK downstream). Every other ACK acknowledges a 2xx and is routed end to
// end, statelessly, as RFC 3261 §16.6 and RFC 6026 require.
func (w *Worker) handleAck(in transport.Inbound, req *sip.Request, now time.Time) {
	if inv := w.invites[inviteID(req)]; inv != nil && inv.tx.OnAck(now) {
		w.counters.AcksAbsorbed.Add(1)
		w.schedule(&inv.timed, inv.deadline())
		return
	}
	w.forwardAck(in, req, now)
}

// respondLocal answers ctx with a response generated here.
func (w *Worker) respondLocal(ctx *serverCtx, code int, reason string, now time.Time) {
	w.counters.LocalReplies.Add(1)
	w.respond(ctx, reply.New(ctx.req, code, reason), now)
}

// respond passes a response through the server transaction and sends it if
// the transaction says so. A 2xx is always sent: RFC 6026 has the proxy
// forward every 2xx, even after the transaction has gone.
func (w *Worker) respond(ctx *serverCtx, res *sip.Response, now time.Time) {
	send := ctx.tx.Respond(res, now)
	if !send && res.StatusCode >= 200 && res.StatusCode < 300 {
		send = true
	}
	first := res.StatusCode >= 200 && !ctx.finalSent
	if first && ctx.susp != nil {
		w.abandonSuspension(ctx)
	}
	if first {
		ctx.finalSent = true
		w.pending--
		w.counters.Finals[res.StatusCode/100].Add(1)
		ctx.timerC = time.Time{}
	}
	if send {
		w.sendResponse(ctx, res, false)
	}
	if first {
		w.faultRelease(ctx)
		w.closeRecord(ctx, res.StatusCode)
		w.compactServer(ctx)
	}
	w.schedule(&ctx.timed, ctx.deadline())
}

// compactServer drops what a context no longer needs once its final
// response is out. The transaction lives on for up to 64*T1 to absorb
// retransmissions (RFC 6026); without this it would also keep the request,
// its routing state and every response, which at thousands of calls/s is
// most of the heap and most of the collector's work.
func (w *Worker) compactServer(ctx *serverCtx) {
	ctx.req = nil
	ctx.first = nil
	ctx.plan = nil
	ctx.best = nil
	ctx.tx.Compact()
}

// sendResponse writes a response to where ctx's request came from;
// retransmission marks a resend from transaction state.
func (w *Worker) sendResponse(ctx *serverCtx, res *sip.Response, retransmission bool) {
	out := ctx.reply
	w.counters.ResponsesOut.Add(1)
	if err := w.write(&out, res); err != nil {
		w.opt.Log.Debug("response send failed", "to", out.To, "code", res.StatusCode, "err", err)
		out.PacketID = 0
	}
	if ctx.rec != nil {
		relays := 0
		if !retransmission {
			relays = ctx.relayIndex(res)
		}
		w.recordOut(ctx.rec, &out, res, relays, retransmission)
	}
}

// statelessReply answers a request that gets no transaction.
func (w *Worker) statelessReply(in transport.Inbound, req *sip.Request, code int, reason string) {
	if req.IsAck() {
		return
	}
	w.counters.LocalReplies.Add(1)
	out := reply.Where(in, req.Via())
	out.Socket = w.opt.Index
	_ = w.write(&out, reply.New(req, code, reason))
}

// serverTimer fires the server transaction's timers and Timer C.
func (w *Worker) serverTimer(ctx *serverCtx, now time.Time) {
	if ctx.susp != nil && !ctx.susp.deadline.After(now) {
		w.suspensionExpired(ctx, now)
	}
	if !ctx.timerC.IsZero() && !ctx.timerC.After(now) {
		ctx.timerC = time.Time{}
		w.timerCFired(ctx, now)
	}
	if d := ctx.tx.Deadline(); !d.IsZero() && !d.After(now) {
		r := ctx.tx.OnTimer(now)
		if r.Resend != nil {
			w.counters.RetransmitsSent.Add(1)
			w.sendResponse(ctx, r.Resend, true)
		}
		if r.Terminated {
			w.removeServer(ctx)
			return
		}
	}
	w.schedule(&ctx.timed, ctx.deadline())
}

func (w *Worker) removeServer(ctx *serverCtx) {
	if w.servers[ctx.key] != ctx {
		return
	}
	delete(w.servers, ctx.key)
	if ctx.inviteID != "" && w.invites[ctx.inviteID] == ctx {
		delete(w.invites, ctx.inviteID)
	}
	if !ctx.finalSent {
		// Should not happen: a transaction only ends after its final
		// response. Keep the books straight anyway.
		ctx.finalSent = true
		w.pending--
	}
	w.closeRecord(ctx, 0)
	w.schedule(&ctx.timed, time.Time{})
	w.counters.ActiveServer.Add(-1)
}
