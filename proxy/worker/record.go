package worker

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/observe"
	"sipvigil/proxy/transport"
)

// Transaction records for telemetry (Options.Txns). Everything here runs on
// the worker goroutine and costs nothing but a nil check when nobody
// observes: the records are how traces and the ordering monitor learn which
// packet relayed which, something only the worker knows.

// respRef remembers which record entry an inbound response is, so that
// relaying the same *sip.Response later (at once, or as the best final
// after failover) points back at it.
type respRef struct {
	res *sip.Response
	idx int
}

// packetID numbers an outbound message: the top bit keeps worker IDs apart
// from the transport's inbound IDs, the worker index keeps workers apart.
func (w *Worker) packetID() uint64 {
	w.packetSeq++
	return 1<<63 | uint64(w.opt.Index&0x7fff)<<48 | w.packetSeq&(1<<48-1)
}

// number gives out a packet ID (and a kernel stamp slot) when recording.
func (w *Worker) number(out *transport.Outbound) {
	if w.opt.Txns == nil {
		return
	}
	out.PacketID = w.packetID()
	if w.opt.KernelStamps {
		out.Stamp = new(observe.Stamp)
	}
}

// recordServer starts the record of a new server transaction.
func (w *Worker) recordServer(ctx *serverCtx, in transport.Inbound, req *sip.Request) {
	if w.opt.Txns == nil {
		return
	}
	t := w.newRecord(observe.TxnServer, req, in.Mono)
	t.Initial = ctx.initial
	w.recordIn(t, in, req)
	ctx.rec = t
}

// newRecord starts a record for req (or a response's request identity).
func (w *Worker) newRecord(kind observe.TxnKind, m sip.Message, start int64) *observe.Txn {
	t := &observe.Txn{Worker: w.opt.Index, Kind: kind, Start: start, Msgs: make([]observe.Msg, 0, 8)}
	if c := m.CallID(); c != nil {
		t.CallID = string(*c)
	}
	if c := m.CSeq(); c != nil {
		t.CSeq = c.SeqNo
		t.Method = string(c.MethodName)
	}
	if req, ok := m.(*sip.Request); ok {
		t.Method = string(req.Method)
	}
	if v := m.Via(); v != nil {
		t.Branch, _ = v.Params.Get("branch")
	}
	if f := m.From(); f != nil {
		t.FromTag, _ = f.Params.Get("tag")
	}
	return t
}

// recordIn appends an inbound message and returns its index.
func (w *Worker) recordIn(t *observe.Txn, in transport.Inbound, m sip.Message) int {
	msg := observe.Msg{ID: in.PacketID, Stamp: in.Stamp, Dir: observe.In, Mono: in.Mono, Proto: protoNumber(in.Proto), Local: in.Local, Peer: in.Remote}
	describe(&msg, m)
	t.Msgs = append(t.Msgs, msg)
	return len(t.Msgs) - 1
}

// recordResponseIn appends a response received on one of ctx's branches.
func (w *Worker) recordResponseIn(ctx *serverCtx, in transport.Inbound, res *sip.Response, retransmission bool) {
	if ctx == nil || ctx.rec == nil {
		return
	}
	idx := w.recordIn(ctx.rec, in, res)
	if retransmission {
		ctx.rec.Msgs[idx].Retransmission = true
		return
	}
	ctx.recResp = append(ctx.recResp, respRef{res: res, idx: idx})
}

// recordOut appends a message just handed to the transport. relays is
// 1 + the index of the inbound message it forwards, 0 if generated here.
func (w *Worker) recordOut(t *observe.Txn, out *transport.Outbound, m sip.Message, relays int, retransmission bool) {
	if t == nil {
		return
	}
	msg := observe.Msg{
		ID: out.PacketID, Stamp: out.Stamp, Dir: observe.Out, Mono: observe.Monotonic(), Proto: protoNumber(out.Proto),
		Local: out.From, Peer: out.To, Relays: relays, Retransmission: retransmission,
	}
	describe(&msg, m)
	t.Msgs = append(t.Msgs, msg)
}

// relayIndex is the Relays value for sending res upstream from ctx.
func (ctx *serverCtx) relayIndex(res *sip.Response) int {
	for _, r := range ctx.recResp {
		if r.res == res {
			return r.idx + 1
		}
	}
	return 0
}

// closeRecord hands ctx's record over once it has nothing more to send.
func (w *Worker) closeRecord(ctx *serverCtx, final int) {
	if ctx.rec == nil {
		return
	}
	t := ctx.rec
	ctx.rec, ctx.recResp = nil, nil
	t.Final = final
	t.End = observe.Monotonic()
	w.opt.Txns.Txn(t)
}

// recordWaitStart notes that ctx's request was suspended at now: the
// instant the queue counts its delay from (Ticket.Enqueued), so a recorded
// wait is never shorter than the delay even when the worker's thread was
// descheduled between taking now and suspending.
func (w *Worker) recordWaitStart(ctx *serverCtx, name, kind string, s *suspension, now time.Time) {
	if ctx.rec == nil {
		return
	}
	wt := observe.Wait{Queue: name, Kind: kind, Start: observe.Monotonic() - int64(time.Since(now))}
	if s != nil && s.queue != nil {
		wt.Delay = s.queue.Delay
	}
	ctx.rec.Waits = append(ctx.rec.Waits, wt)
}

// recordWaitEnd closes the open wait of ctx with an outcome.
func (w *Worker) recordWaitEnd(ctx *serverCtx, outcome string) {
	if ctx.rec == nil || len(ctx.rec.Waits) == 0 {
		return
	}
	wt := &ctx.rec.Waits[len(ctx.rec.Waits)-1]
	if wt.End != 0 {
		return
	}
	wt.End = observe.Monotonic()
	wt.Outcome = outcome
}

// describe fills the method and status of a record entry.
func describe(msg *observe.Msg, m sip.Message) {
	switch m := m.(type) {
	case *sip.Request:
		msg.Method = string(m.Method)
	case *sip.Response:
		msg.Status = m.StatusCode
		if c := m.CSeq(); c != nil {
			msg.Method = string(c.MethodName)
		}
	}
}

func protoNumber(p transport.Proto) uint8 {
	if p == transport.TCP {
		return observe.ProtoTCP
	}
	return observe.ProtoUDP
}
