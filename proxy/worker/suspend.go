package worker

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
	"sipvigil/proxy/lookup"
	"sipvigil/proxy/reply"
	"sipvigil/proxy/suspend"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// This file is Kamailio's t_suspend + mqueue + rtimer + t_continue, done on
// the worker that owns the dialog.
//
// A suspended transaction keeps its server transaction (100 Trying is out,
// retransmissions are absorbed, a CANCEL is answered at once) and parks its
// Call-ID: every later request of the dialog waits behind it, in arrival
// order, and is processed only after the suspended request has been
// forwarded or answered. Responses skip the wait (they belong to
// transactions already forwarded), and so do the suspended transaction's
// own retransmissions, CANCEL and ACK. Resumption always happens here, on
// the owning worker, never on the goroutine that finished the wait.

// QueueBinding is a named suspend queue as a worker uses it.
type QueueBinding struct {
	Name    string
	Queue   *suspend.Queue
	Delay   time.Duration
	MaxWait time.Duration
	OnFull  config.Reply
}

// LookupBinding is a named HTTP route lookup as a worker uses it. The
// client maps its own timeouts to on_timeout; OnError answers a lookup the
// client cannot even accept (its queue is full or it has stopped).
type LookupBinding struct {
	Name    string
	Client  *lookup.Client
	MaxWait time.Duration
	OnError config.Reply
}

// maxParkedPerDialog bounds what one dialog may queue behind a suspended
// request; past it requests get 503 (a peer flooding one dialog must not
// eat the worker's memory).
const maxParkedPerDialog = 64

// suspension is why and until when a server context is suspended.
type suspension struct {
	id       uint64
	queue    *QueueBinding // nil for async work
	ticket   suspend.Ticket
	deadline time.Time // max_wait: answered 408 if not resumed by then
}

// parkedDialog holds a dialog's later messages behind its suspended request.
type parkedDialog struct {
	held    *serverCtx
	waiting []transport.Inbound
}

// resumption comes back to the worker from a queue consumer or async work.
type resumption struct {
	id     uint64
	ticket *suspend.Ticket // set when a queue released the entry
	result *AsyncResult    // set when async work finished
}

// AsyncResult is what async routing work hands back to the worker: hops
// to forward to (in failover order), or a reply to send instead.
type AsyncResult struct {
	Hops  []config.Hop
	Reply *config.Reply
}

// AsyncStart begins async work for a suspended request. It must not block,
// and must call done exactly once, from any goroutine, unless it returns
// false (the work could not start; the worker answers onError itself).
type AsyncStart func(done func(AsyncResult)) bool

// Release hands a queue's due ticket back to this worker. Called by queue
// consumer goroutines; it blocks when the worker is behind, which slows
// the consumers, never the SIP readers.
func (w *Worker) Release(t suspend.Ticket) {
	w.post(resumption{id: t.ID, ticket: &t})
}

// post delivers a resumption unless the worker has stopped; a consumer or
// lookup goroutine must never hang on a worker that is gone.
func (w *Worker) post(r resumption) {
	select {
	case w.resume <- r:
	case <-w.stopped:
	}
}

// parkCheck returns true when in must wait behind a suspended request of
// its dialog, and queues it.
func (w *Worker) parkCheck(in transport.Inbound) bool {
	cid := in.Msg.CallID()
	if cid == nil {
		return false
	}
	p := w.parked[string(*cid)]
	if p == nil {
		return false
	}
	req, ok := in.Msg.(*sip.Request)
	if !ok {
		return false // responses belong to transactions already forwarded
	}
	if p.held != nil {
		if req.IsAck() || req.IsCancel() {
			if inviteID(req) == p.held.inviteID {
				return false // the suspended INVITE's own CANCEL or ACK
			}
		} else if key, err := txn.ServerKey(req); err == nil && key == p.held.key {
			return false // a retransmission of the suspended request
		}
	}
	if len(p.waiting) >= maxParkedPerDialog {
		w.counters.ParkOverflow.Add(1)
		if !req.IsAck() {
			w.statelessReply(in, req, 503, "Dialog Queue Full")
		}
		return true
	}
	w.counters.Parked.Add(1)
	p.waiting = append(p.waiting, in)
	return true
}

// suspendOnQueue puts ctx on a delay queue.
func (w *Worker) suspendOnQueue(ctx *serverCtx, qb *QueueBinding, now time.Time) {
	id := w.nextSeq()
	t := suspend.Ticket{Worker: w.opt.Index, ID: id, Enqueued: now, Due: now.Add(qb.Delay)}
	if !qb.Queue.Enqueue(t) {
		// Never silent: Kamailio's mqueue would evict its oldest entry
		// and that call would die 30 s later with a 408.
		w.recordWaitStart(ctx, qb.Name, "queue", nil, now)
		w.recordWaitEnd(ctx, "overflow")
		w.respondReply(ctx, qb.OnFull, now)
		return
	}
	s := &suspension{id: id, queue: qb, ticket: t, deadline: now.Add(qb.MaxWait)}
	w.recordWaitStart(ctx, qb.Name, "queue", s, now)
	w.park(ctx, s, now)
}

// suspendAsync suspends ctx while start runs async work off the worker;
// the result continues routing here. This is the Go API behind routes that
// use an HTTP lookup, and the hook for any other async routing step.
func (w *Worker) suspendAsync(ctx *serverCtx, name string, maxWait time.Duration, onError config.Reply, start AsyncStart, now time.Time) {
	id := w.nextSeq()
	w.recordWaitStart(ctx, name, "lookup", nil, now)
	w.park(ctx, &suspension{id: id, deadline: now.Add(maxWait)}, now)
	if !start(func(r AsyncResult) { w.post(resumption{id: id, result: &r}) }) {
		w.recordWaitEnd(ctx, "error")
		w.endSuspension(ctx)
		w.respondReply(ctx, onError, now)
	}
}

// startLookup runs a route's HTTP lookup asynchronously.
func (w *Worker) startLookup(ctx *serverCtx, name string, now time.Time) {
	lb := w.opt.Lookups[name]
	if lb == nil {
		w.respondLocal(ctx, 500, "Unknown Route Lookup", now)
		return
	}
	req := ctx.req
	lr := lookup.Request{
		Method: string(req.Method),
		RURI:   req.Recipient.String(),
		User:   req.Recipient.User,
		Host:   req.Recipient.Host,
		CallID: ctx.callID,
		Source: ctx.reply.To.String(),
	}
	if f := req.From(); f != nil {
		lr.From = f.Address.String()
	}
	if t := req.To(); t != nil {
		lr.To = t.Address.String()
	}
	w.counters.Lookups.Add(1)
	w.suspendAsync(ctx, name, lb.MaxWait, lb.OnError, func(done func(AsyncResult)) bool {
		return lb.Client.Lookup(lr, func(res lookup.Result) {
			switch {
			case res.Reply != nil:
				done(AsyncResult{Reply: &config.Reply{Code: res.Reply.Code, Reason: res.Reply.Reason}})
			default:
				done(AsyncResult{Hops: res.Hops})
			}
		})
	}, now)
}

// park suspends ctx and parks its dialog.
func (w *Worker) park(ctx *serverCtx, s *suspension, now time.Time) {
	ctx.susp = s
	w.suspended[s.id] = ctx
	if _, ok := w.parked[ctx.callID]; !ok {
		w.parked[ctx.callID] = &parkedDialog{held: ctx}
	} else {
		w.parked[ctx.callID].held = ctx
	}
	w.counters.Suspended.Add(1)
	w.schedule(&ctx.timed, ctx.deadline())
}

// endSuspension forgets ctx's suspension and schedules its dialog to be
// unparked once the current event is done.
func (w *Worker) endSuspension(ctx *serverCtx) {
	s := ctx.susp
	if s == nil {
		return
	}
	ctx.susp = nil
	delete(w.suspended, s.id)
	if p := w.parked[ctx.callID]; p != nil && p.held == ctx {
		p.held = nil
		w.unparkLater = append(w.unparkLater, ctx.callID)
	}
	w.schedule(&ctx.timed, ctx.deadline())
}

// handleResume continues a suspended transaction on this worker.
func (w *Worker) handleResume(r resumption, now time.Time) {
	ctx := w.suspended[r.id]
	if ctx == nil {
		// Answered while waiting (CANCEL, max_wait, shutdown): the entry
		// is discarded here, never forwarded.
		return
	}
	if r.ticket != nil && w.opt.RejectQueued && w.shuttingDown.Load() {
		w.recordWaitEnd(ctx, "rejected")
		w.abandonSuspension(ctx)
		w.respondLocal(ctx, 503, "Shutting Down", now)
		return
	}
	if r.ticket != nil && ctx.susp.queue != nil {
		ctx.susp.queue.Queue.ObserveResume(*r.ticket, now)
	}
	switch {
	case r.result == nil:
		w.recordWaitEnd(ctx, "released")
	case r.result.Reply != nil:
		w.recordWaitEnd(ctx, "error")
	default:
		w.recordWaitEnd(ctx, "done")
	}
	w.endSuspension(ctx)
	w.counters.Resumed.Add(1)
	switch {
	case r.result == nil:
		w.routeRequest(ctx, now)
	case r.result.Reply != nil:
		w.respondReply(ctx, *r.result.Reply, now)
	default:
		ctx.plan = ctx.plan[:0]
		for i := range r.result.Hops {
			h := &r.result.Hops[i]
			proto := transport.UDP
			if h.Transport == config.TransportTCP {
				proto = transport.TCP
			}
			ctx.plan = append(ctx.plan, target{proto: proto, addr: h.Addr})
		}
		ctx.recordRoute = ctx.initial && w.opt.RecordRoute && dialogCreating(ctx.req.Method)
		if len(ctx.plan) == 0 {
			w.respondLocal(ctx, 500, "Route Lookup Returned No Hops", now)
			return
		}
		if !w.nextBranch(ctx, now) {
			w.finish(ctx, now)
		}
	}
}

// suspensionExpired: max_wait passed before the queue or the async work
// gave the transaction back. RFC-wise this is our own Timer C: 408.
func (w *Worker) suspensionExpired(ctx *serverCtx, now time.Time) {
	if s := ctx.susp; s != nil && s.queue != nil {
		s.queue.Queue.CountExpired()
	}
	w.counters.SuspendExpired.Add(1)
	w.recordWaitEnd(ctx, "expired")
	w.endSuspension(ctx)
	w.respondLocal(ctx, 408, "Request Timeout", now)
}

// abandonSuspension ends a suspension because ctx was answered otherwise
// (CANCEL, shutdown). Its queue ticket will be discarded at release.
func (w *Worker) abandonSuspension(ctx *serverCtx) {
	if s := ctx.susp; s != nil && s.queue != nil {
		s.queue.Queue.CountCancelled()
	}
	w.recordWaitEnd(ctx, "cancelled")
	w.endSuspension(ctx)
}

// flushUnparks drains dialogs whose suspended request is done, in arrival
// order. A drained request may suspend the dialog again; the rest of the
// queue then stays parked behind it.
func (w *Worker) flushUnparks(now time.Time) {
	for len(w.unparkLater) > 0 {
		cid := w.unparkLater[0]
		w.unparkLater = w.unparkLater[1:]
		p := w.parked[cid]
		if p == nil || p.held != nil {
			continue
		}
		delete(w.parked, cid)
		for i, in := range p.waiting {
			w.handle(in, now)
			if np := w.parked[cid]; np != nil {
				np.waiting = append(np.waiting, p.waiting[i+1:]...)
				break
			}
		}
	}
	w.unparkLater = w.unparkLater[:0]
}

// rejectSuspended answers every suspended transaction with 503 (shutdown
// policy "reject").
func (w *Worker) rejectSuspended(now time.Time) {
	for _, ctx := range w.suspended {
		if ctx.susp.queue == nil {
			continue // async work finishes on its own, bounded by its timeout
		}
		w.recordWaitEnd(ctx, "rejected")
		w.abandonSuspension(ctx)
		w.respondLocal(ctx, 503, "Shutting Down", now)
	}
}

// respondReply sends a configured reply (on_full, lookup failures).
func (w *Worker) respondReply(ctx *serverCtx, r config.Reply, now time.Time) {
	res := reply.New(ctx.req, r.Code, r.Reason)
	if r.RetryAfter > 0 {
		reply.WithRetryAfter(res, reply.RetryAfter(r.RetryAfter))
	}
	w.counters.LocalReplies.Add(1)
	w.respond(ctx, res, now)
}
