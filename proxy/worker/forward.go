package worker

import (
	"bytes"
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/observe"
	"sipvigil/proxy/reply"
	"sipvigil/proxy/route"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// branchPrefix marks branches sipvigil created: the RFC 3261 magic cookie,
// then "sv", the loop-detection hash (§16.6 step 8), and a unique suffix.
const branchPrefix = "z9hG4bK-sv-"

// routeRequest decides where a new request goes (RFC 3261 §16.4-16.5) and
// forwards its first branch.
func (w *Worker) routeRequest(ctx *serverCtx, now time.Time) {
	req := ctx.req
	fwd, popped := w.prepare(ctx)
	ctx.first = fwd

	switch r := topRoute(fwd); {
	case r != nil:
		t, ok := uriTarget(&r.Address)
		if !ok {
			w.respondLocal(ctx, 478, "Unresolvable Route", now)
			return
		}
		ctx.plan = []target{t}
	case req.Method == sip.OPTIONS && w.addressedToUs(fwd):
		w.localRequest(ctx, now)
		return
	case !ctx.initial || popped:
		t, ok := uriTarget(&fwd.Recipient)
		if !ok {
			w.respondLocal(ctx, 478, "Unresolvable Request-URI", now)
			return
		}
		if !w.isSelf(t) {
			ctx.plan = []target{t}
			break
		}
		// An in-dialog request whose target is this proxy: the peer did
		// not record its route set (SIPp's built-in uac, many test
		// tools). Route it like an initial request rather than sending
		// it to ourselves.
		fallthrough
	default:
		rt := w.opt.Router.Match(string(req.Method), &req.Recipient)
		ctx.recordRoute = ctx.initial && w.opt.RecordRoute && dialogCreating(req.Method)
		if rt.Lookup != "" {
			w.startLookup(ctx, rt.Lookup, now)
			return
		}
		ctx.plan = w.planFor(rt, ctx.plan[:0])
	}
	if len(ctx.plan) == 0 {
		w.respondLocal(ctx, 503, "No Destination", now)
		return
	}
	if !w.nextBranch(ctx, now) {
		w.finish(ctx, now)
	}
}

// configPlan appends the configured destination set's hops for req, in
// failover order.
func (w *Worker) configPlan(req *sip.Request, dst []target) []target {
	return w.planFor(w.opt.Router.Match(string(req.Method), &req.Recipient), dst)
}

// planFor appends a route's destination-set hops in failover order; a
// route that uses a lookup has none.
func (w *Worker) planFor(rt *route.Route, dst []target) []target {
	if rt.Set == nil {
		return dst
	}
	w.hops = rt.Set.Plan(w.rnd.Uint64(), w.opt.Health, w.hops[:0])
	for _, h := range w.hops {
		dst = append(dst, hopTarget(h))
	}
	return dst
}

// isSelf reports whether t is one of our own listen addresses.
func (w *Worker) isSelf(t target) bool {
	for _, l := range w.opt.Locals {
		if l.Addr == t.addr {
			return true
		}
	}
	return false
}

// prepare makes the copy of ctx's request that one branch will carry:
// Request-URI restored from a strict router (§16.4), our own Routes popped,
// Max-Forwards decremented (a fresh header, never the pointer sipgo's Clone
// shares). popped reports whether a Route of ours was removed.
func (w *Worker) prepare(ctx *serverCtx) (fwd *sip.Request, popped bool) {
	req := ctx.req
	fwd = req.Clone()
	if w.isOurs(fwd.Recipient.Host, fwd.Recipient.Port) && fwd.Recipient.User == "" {
		if routes := fwd.GetHeaders("Route"); len(routes) > 0 {
			last := routes[len(routes)-1].(*sip.RouteHeader)
			fwd.Recipient = *last.Address.Clone()
			removeLastRoute(fwd)
		}
	}
	// Loose routing: pop every Route that names us (two with double
	// Record-Route).
	for r := topRoute(fwd); r != nil && w.isOurs(r.Address.Host, r.Address.Port); r = topRoute(fwd) {
		fwd.RemoveHeader("Route")
		popped = true
	}
	mf := w.opt.MaxForwards
	if h := req.MaxForwards(); h != nil {
		mf = int(*h) - 1
	}
	newMF := sip.MaxForwardsHeader(uint32(mf))
	if fwd.MaxForwards() != nil {
		fwd.ReplaceHeader(&newMF)
	} else {
		fwd.AppendHeader(&newMF)
	}
	return fwd, popped
}

// topRoute returns the top Route header without sipgo's lazy-parse
// allocation when there is none.
func topRoute(m *sip.Request) *sip.RouteHeader {
	for _, h := range m.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok {
			return r
		}
	}
	return nil
}

// localRequest answers requests addressed to sipvigil itself. OPTIONS gets
// 200 so load balancers and peers can health-check the proxy, as they do
// with Kamailio's keepalive replies.
func (w *Worker) localRequest(ctx *serverCtx, now time.Time) {
	if ctx.req.Method == sip.OPTIONS {
		res := reply.New(ctx.req, 200, "OK")
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, MESSAGE, REFER, NOTIFY, SUBSCRIBE"))
		w.counters.LocalReplies.Add(1)
		w.respond(ctx, res, now)
		return
	}
	w.respondLocal(ctx, 404, "Not Found", now)
}

func dialogCreating(m sip.RequestMethod) bool {
	switch m {
	case sip.INVITE, sip.SUBSCRIBE, sip.REFER, sip.NOTIFY:
		return true
	}
	return false
}

func removeLastRoute(m *sip.Request) {
	routes := m.GetHeaders("Route")
	keep := append([]sip.Header(nil), routes[:len(routes)-1]...)
	for range routes {
		m.RemoveHeader("Route")
	}
	for _, r := range keep {
		m.AppendHeader(r)
	}
}

// nextBranch forwards to the next target of the plan. It returns false when
// the plan is exhausted.
func (w *Worker) nextBranch(ctx *serverCtx, now time.Time) bool {
	for ctx.next < len(ctx.plan) {
		t := ctx.plan[ctx.next]
		ctx.next++
		if ctx.next > 1 {
			w.counters.Failovers.Add(1)
		}
		if w.forward(ctx, t, now) {
			return true
		}
	}
	return false
}

// forward sends one branch to t. It returns false on an immediate transport
// failure, which counts as a 503 from that branch (RFC 3261 §16.9).
func (w *Worker) forward(ctx *serverCtx, t target, now time.Time) bool {
	proto := t.proto
	base := ctx.first
	ctx.first = nil
	if base == nil {
		base, _ = w.prepare(ctx)
	}
	req, ok := w.buildBranch(ctx, base, proto, t)
	if !ok {
		w.recordBest(ctx, reply.New(ctx.req, 503, "No Local Address"))
		return false
	}
	data := w.serialize(req)
	if proto == transport.UDP && len(data) > w.opt.UDPMTU {
		// RFC 3261 §18.1.1: too large for UDP, use TCP and say so in Via.
		proto = transport.TCP
		base, _ = w.prepare(ctx)
		if req, ok = w.buildBranch(ctx, base, proto, t); !ok {
			w.recordBest(ctx, reply.New(ctx.req, 503, "No Local Address"))
			return false
		}
		data = w.serialize(req)
	}
	t.proto = proto
	b := w.newBranch(req, t, data, now)
	b.ctx = ctx
	ctx.branches = append(ctx.branches, b)
	if ctx.tx.IsInvite() && ctx.timerC.IsZero() {
		ctx.timerC = now.Add(w.opt.TimerC)
		w.schedule(&ctx.timed, ctx.deadline())
	}
	if err := w.transmit(b, ctx.rec, 1, false); err != nil {
		w.counters.TransportErrors.Add(1)
		w.opt.Log.Debug("forward failed", "to", t.addr, "proto", proto, "err", err)
		b.tx.OnTransportError(now)
		w.removeBranch(b)
		b.final = true
		if t.hop != nil {
			w.opt.Health.Fail(t.hop)
		}
		w.recordBest(ctx, reply.New(ctx.req, 503, "Service Unavailable"))
		return false
	}
	w.counters.RequestsOut.Add(1)
	return true
}

// buildBranch adds Via and Record-Route to req, a prepared copy, for the
// local address the branch leaves from.
func (w *Worker) buildBranch(ctx *serverCtx, req *sip.Request, proto transport.Proto, t target) (*sip.Request, bool) {
	out, ok := w.local(proto, t.addr.Addr())
	if !ok {
		return nil, false
	}
	if ctx.recordRoute {
		// Double Record-Route when the request changes interface or
		// transport, as Kamailio's record_route() does, so each side of
		// the dialog reaches us the way it reached us before.
		in := ctx.inLocal
		if in.Addr == out.Addr && in.Proto == out.Proto {
			req.PrependHeader(recordRoute(out))
		} else {
			req.PrependHeader(recordRoute(out), recordRoute(in))
		}
	}
	req.PrependHeader(w.newVia(out, ctx.loopHash))
	return req, true
}

func recordRoute(l Local) *sip.RecordRouteHeader {
	u := sip.Uri{Scheme: "sip", Host: l.Host, Port: l.Port, UriParams: sip.NewParams()}
	if l.Proto == transport.TCP {
		u.UriParams.Add("transport", "tcp")
	}
	u.UriParams.Add("lr", "")
	return &sip.RecordRouteHeader{Address: u}
}

func (w *Worker) newVia(l Local, loop string) *sip.ViaHeader {
	params := sip.NewParams()
	params.Add("branch", branchPrefix+loop+"-"+strconv.FormatUint(uint64(w.opt.Index), 36)+"."+strconv.FormatUint(w.nextSeq(), 36)+"."+strconv.FormatUint(w.rnd.Uint64()&0xffffff, 36))
	return &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.Proto.String(), Host: l.Host, Port: l.Port, Params: params}
}

// newBranch creates and registers the client transaction for req.
func (w *Worker) newBranch(req *sip.Request, t target, data []byte, now time.Time) *branch {
	b := &branch{
		timed:  timed{index: -1},
		req:    req,
		data:   data,
		to:     t,
		sentAt: now,
	}
	from, _ := w.local(t.proto, t.addr.Addr())
	b.out = transport.Outbound{Proto: t.proto, From: from.Addr, To: t.addr, Socket: w.opt.Index}
	b.key, _ = txn.ClientKey(req)
	b.tx = txn.NewClient(req, t.proto == transport.TCP, w.opt.Timers, now)
	b.fire = func(w *Worker, now time.Time) { w.clientTimer(b, now) }
	if t.proto == transport.TCP {
		key := b.key
		b.out.OnError = func(err error) {
			select {
			case w.control <- control{kind: ctrlSendFailed, key: key, err: err}:
			default:
			}
		}
	}
	w.clients[b.key] = b
	w.counters.ClientTxCreated.Add(1)
	w.counters.ActiveClient.Add(1)
	w.schedule(&b.timed, b.deadline())
	return b
}

func (w *Worker) removeBranch(b *branch) {
	if w.clients[b.key] == b {
		delete(w.clients, b.key)
		w.counters.ActiveClient.Add(-1)
	}
	w.schedule(&b.timed, time.Time{})
}

// transmit sends the branch's serialized request, and records it in rec
// (if not nil) as relaying message relays-1 of the record, or generated
// (relays 0), or a timer retransmission.
func (w *Worker) transmit(b *branch, rec *observe.Txn, relays int, retransmission bool) error {
	out := b.out
	out.Data = b.data
	w.number(&out)
	err := w.opt.Out.Send(out)
	if err == nil && rec != nil {
		w.recordOut(rec, &out, b.req, relays, retransmission)
	}
	return err
}

// serialize renders m into a new byte slice. A fresh slice per message: the
// branch keeps it for retransmissions and TCP writers queue it.
func (w *Worker) serialize(m sip.Message) []byte {
	w.buf.Reset()
	m.StringWrite(&w.buf)
	return bytes.Clone(w.buf.Bytes())
}

// write serializes and sends one message on out.
func (w *Worker) write(out *transport.Outbound, m sip.Message) error {
	w.buf.Reset()
	m.StringWrite(&w.buf)
	if out.Proto == transport.TCP {
		out.Data = bytes.Clone(w.buf.Bytes())
	} else {
		out.Data = w.buf.Bytes() // UDP sendto copies before returning
	}
	w.number(out)
	err := w.opt.Out.Send(*out)
	out.Data = nil
	return err
}

// loopHash is the loop-detection part of our branch (RFC 3261 §16.6 step 8):
// a hash of the fields that stay the same when a request comes back to us
// unchanged. The top Via is left out on purpose: it differs on every lap,
// which would make the RFC's recipe miss real loops (see RFC 5393 §4.2).
func loopHash(req *sip.Request) string {
	h := fnv.New64a()
	h.Write([]byte(req.Recipient.String()))
	if c := req.CallID(); c != nil {
		h.Write([]byte(*c))
	}
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		h.Write([]byte(t))
	}
	if t := req.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		h.Write([]byte(tag))
	}
	if c := req.CSeq(); c != nil {
		h.Write([]byte(strconv.FormatUint(uint64(c.SeqNo), 10)))
	}
	var sum [8]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:6])
}

// looped reports a request that already carries one of our Vias with the
// same loop hash: it came back with the same target, a loop. A different
// hash is a spiral (the target changed) and is allowed.
func (w *Worker) looped(req *sip.Request, hash string) bool {
	for _, h := range req.Headers() {
		v, ok := h.(*sip.ViaHeader)
		if !ok || !w.isOurs(v.Host, v.Port) {
			continue
		}
		b, _ := v.Params.Get("branch")
		if rest, ok := strings.CutPrefix(b, branchPrefix); ok && strings.HasPrefix(rest, hash+"-") {
			return true
		}
	}
	return false
}

// forwardAck routes an ACK for a 2xx end to end without a transaction.
func (w *Worker) forwardAck(in transport.Inbound, req *sip.Request, now time.Time) {
	fwd := req.Clone()
	for r := topRoute(fwd); r != nil && w.isOurs(r.Address.Host, r.Address.Port); r = topRoute(fwd) {
		fwd.RemoveHeader("Route")
	}
	if h := req.MaxForwards(); h != nil {
		if *h == 0 {
			return // an ACK is never answered; drop it
		}
		mf := sip.MaxForwardsHeader(*h - 1)
		fwd.ReplaceHeader(&mf)
	}
	var t target
	var ok bool
	if r := topRoute(fwd); r != nil {
		t, ok = uriTarget(&r.Address)
	} else {
		t, ok = uriTarget(&fwd.Recipient)
	}
	if ok && w.isSelf(t) {
		// The ACK's target is this proxy (a peer without a route set):
		// send it where the INVITE went, the first configured hop.
		plan := w.configPlan(fwd, nil)
		ok = len(plan) > 0
		if ok {
			t = plan[0]
		}
	}
	if !ok {
		w.counters.StrayDropped.Add(1)
		return
	}
	l, found := w.local(t.proto, t.addr.Addr())
	if !found {
		return
	}
	// Stateless branch: derived from the incoming one, so a retransmitted
	// ACK gets the same branch (RFC 3261 §16.11).
	in0, _ := req.Via().Params.Get("branch")
	h := fnv.New64a()
	h.Write([]byte(in0))
	params := sip.NewParams()
	params.Add("branch", branchPrefix+"ack-"+strconv.FormatUint(h.Sum64(), 36))
	fwd.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.Proto.String(), Host: l.Host, Port: l.Port, Params: params})
	out := transport.Outbound{Proto: t.proto, From: l.Addr, To: t.addr, Socket: w.opt.Index}
	if err := w.write(&out, fwd); err == nil {
		w.counters.AcksForwarded.Add(1)
		if w.opt.Txns != nil {
			rec := w.newRecord(observe.TxnAck, req, in.Mono)
			w.recordIn(rec, in, req)
			w.recordOut(rec, &out, fwd, 1, false)
			rec.End = observe.Monotonic()
			w.opt.Txns.Txn(rec)
		}
	}
}
