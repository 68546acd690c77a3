package worker

import (
	"encoding/hex"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/route"
	"sipvigil/proxy/transport"
)

// A prober sends OPTIONS to one configured hop at its set's interval, like
// Kamailio's dispatcher with ds_ping_interval. It runs on a worker as an
// ordinary client transaction, so its answers need no special path: the
// probe's Call-ID is chosen so that the dispatcher hashes it back here.
type prober struct {
	timed
	hop      *route.Hop
	interval time.Duration
	timeout  time.Duration
	fromURI  string
	busy     bool
}

func (w *Worker) startProbes(now time.Time) {
	for i, hop := range w.opt.Probes {
		set := w.sets[hop.Set]
		if set == nil || !set.Probe.Enabled {
			continue
		}
		p := &prober{timed: timed{index: -1}, hop: hop, interval: set.Probe.Interval, timeout: set.Probe.Timeout, fromURI: set.Probe.FromURI}
		if p.interval <= 0 {
			p.interval = 10 * time.Second
		}
		if max := 64 * w.opt.Timers.T1; p.timeout <= 0 || p.timeout > max {
			p.timeout = max
		}
		p.fire = func(w *Worker, now time.Time) { w.sendProbe(p, now) }
		// Spread the first probes over the interval instead of a burst.
		w.schedule(&p.timed, now.Add(time.Duration(i+1)*p.interval/time.Duration(len(w.opt.Probes)+1)))
	}
}

func (w *Worker) sendProbe(p *prober, now time.Time) {
	w.schedule(&p.timed, now.Add(p.interval))
	if p.busy {
		return // the previous probe is still out; its timeout will report
	}
	t := hopTarget(p.hop)
	l, ok := w.local(t.proto, t.addr.Addr())
	if !ok {
		return
	}
	req := w.probeRequest(p, t, l)
	b := w.newBranch(req, t, w.serialize(req), now)
	b.probeOwner = p
	b.probeExpiry = now.Add(p.timeout)
	w.schedule(&b.timed, b.deadline())
	p.busy = true
	w.counters.ProbesSent.Add(1)
	if err := w.transmit(b, nil, 0, false); err != nil {
		w.probeFailed(b, now)
	}
}

func (w *Worker) probeRequest(p *prober, t target, l Local) *sip.Request {
	ruri := sip.Uri{Scheme: "sip", Host: p.hop.Host, Port: p.hop.Port, UriParams: sip.NewParams()}
	if t.proto == transport.TCP {
		ruri.UriParams.Add("transport", "tcp")
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	params := sip.NewParams()
	params.Add("branch", branchPrefix+"probe-"+w.randHex(8))
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.Proto.String(), Host: l.Host, Port: l.Port, Params: params})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Params: sip.NewParams()}
	from.Address = sip.Uri{Scheme: "sip", User: "sipvigil", Host: l.Host, Port: l.Port}
	if p.fromURI != "" {
		_ = sip.ParseUri(p.fromURI, &from.Address)
	}
	from.Params.Add("tag", w.randHex(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: *ruri.Clone(), Params: sip.NewParams()})
	cid := w.ownCallID()
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	cl := sip.ContentLengthHeader(0)
	req.AppendHeader(&cl)
	return req
}

// ownCallID returns a Call-ID that the dispatcher maps to this worker.
func (w *Worker) ownCallID() sip.CallIDHeader {
	for {
		cid := "probe-" + w.randHex(12)
		if w.opt.Pick(cid) == w.opt.Index {
			return sip.CallIDHeader(cid)
		}
	}
}

func (w *Worker) randHex(n int) string {
	var b [16]byte
	for i := 0; i < n && i < len(b); i += 8 {
		v := w.rnd.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:n])
}

// probeAnswered: any final response means the hop is alive, except 408 and
// 503, which mean it is not serving (Kamailio's dispatcher default).
func (w *Worker) probeAnswered(b *branch, res *sip.Response, now time.Time) {
	if res.StatusCode < 200 {
		return
	}
	ok := res.StatusCode != 408 && res.StatusCode != 503
	w.probeDone(b, ok, now)
}

func (w *Worker) probeTimedOut(b *branch, now time.Time) { w.probeFailed(b, now) }

func (w *Worker) probeFailed(b *branch, now time.Time) { w.probeDone(b, false, now) }

func (w *Worker) probeDone(b *branch, ok bool, now time.Time) {
	if b.probeOwner == nil || !b.probeOwner.busy {
		return
	}
	b.probeOwner.busy = false
	b.probeExpiry = time.Time{}
	rtt := now.Sub(b.sentAt)
	if up, changed := w.opt.Health.Report(b.probeOwner.hop, ok, rtt); changed {
		w.opt.Log.Info("next hop health changed", "hop", b.probeOwner.hop.Key, "up", up, "rtt", rtt)
	}
	if !ok {
		// Stop retransmitting a probe we have given up on.
		w.removeBranch(b)
	}
}
