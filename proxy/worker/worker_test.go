package worker

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/config"
	"sipvigil/proxy/route"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/txn"
)

// recorder is a Sender that keeps what the worker wrote.
type recorder struct {
	mu   sync.Mutex
	sent []sent
	fail map[netip.AddrPort]error
}

type sent struct {
	out transport.Outbound
	msg sip.Message
}

func (r *recorder) Send(out transport.Outbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[out.To]; err != nil {
		return err
	}
	m, err := sip.ParseMessage(append([]byte(nil), out.Data...))
	if err != nil {
		panic("worker wrote unparseable SIP: " + err.Error() + "\n" + string(out.Data))
	}
	out.Data = nil
	r.sent = append(r.sent, sent{out: out, msg: m})
	return nil
}

// take returns and forgets everything sent so far.
func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

var (
	proxyAddr = netip.MustParseAddrPort("127.0.0.1:5060")
	uacAddr   = netip.MustParseAddrPort("127.0.0.1:5061")
	uas1      = netip.MustParseAddrPort("127.0.0.1:5070")
	uas2      = netip.MustParseAddrPort("127.0.0.1:5080")
)

const twoHops = `
listen: [{address: 127.0.0.1:5060, transports: [udp, tcp]}]
timers: {t1: 500ms}
destinations:
  uas:
    hops: ["127.0.0.1:5070;transport=udp", "127.0.0.1:5080;transport=udp"]
routes:
  - {name: default, to: uas}
`

func newTestWorker(t *testing.T, yaml string) (*Worker, *recorder) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	router := route.New(cfg)
	rec := &recorder{fail: map[netip.AddrPort]error{}}
	var locals []Local
	for _, l := range cfg.Listen {
		for _, tr := range l.Transports {
			p, _ := transport.ParseProto(tr)
			locals = append(locals, Local{Proto: p, Addr: l.Address, Host: l.AdvertiseHost, Port: l.AdvertisePort})
		}
	}
	w := New(Options{
		Timers:      txn.Timers{T1: cfg.Timers.T1, T2: cfg.Timers.T2, T4: cfg.Timers.T4},
		TimerC:      cfg.Timers.TimerC,
		RecordRoute: cfg.Proxy.RecordRoute,
		MaxForwards: cfg.Proxy.MaxForwards,
		UDPMTU:      cfg.Proxy.UDPMTUThreshold,
		Locals:      locals,
		Router:      router,
		Health:      route.NewHealth(router),
		Out:         rec,
	})
	return w, rec
}

// msg parses a SIP message written with \n line ends.
func msg(t *testing.T, text string) sip.Message {
	t.Helper()
	text = strings.ReplaceAll(strings.TrimLeft(text, "\n"), "\n", "\r\n")
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return m
}

func inbound(m sip.Message, from netip.AddrPort) transport.Inbound {
	m.SetTransport("UDP")
	m.SetSource(from.String())
	return transport.Inbound{Msg: m, Proto: transport.UDP, Local: proxyAddr, Remote: from}
}

const invite = `
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-1;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: call-1@test
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:5061>
Content-Length: 0

`

// responseTo builds a response to a request the proxy forwarded, as the UAS
// would: same Vias, From, Call-ID, CSeq, To with a tag.
func responseTo(t *testing.T, req sip.Message, code int, reason string) *sip.Response {
	t.Helper()
	res := sip.NewResponseFromRequest(req.(*sip.Request), code, reason, nil)
	if code > 100 {
		res.To().Params.Add("tag", "uas-tag")
	}
	return res
}

func requestsTo(s []sent, to netip.AddrPort) []*sip.Request {
	var out []*sip.Request
	for _, x := range s {
		if r, ok := x.msg.(*sip.Request); ok && x.out.To == to {
			out = append(out, r)
		}
	}
	return out
}

func responsesTo(s []sent, to netip.AddrPort) []*sip.Response {
	var out []*sip.Response
	for _, x := range s {
		if r, ok := x.msg.(*sip.Response); ok && x.out.To == to {
			out = append(out, r)
		}
	}
	return out
}

func codes(rs []*sip.Response) []int {
	var c []int
	for _, r := range rs {
		c = append(c, r.StatusCode)
	}
	return c
}

func TestInviteForwardedWithViaRecordRouteAndMaxForwards(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	s := rec.take()
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 100 {
		t.Fatalf("upstream responses = %v, want [100]", got)
	}
	fwd := requestsTo(s, uas1)
	if len(fwd) != 1 {
		t.Fatalf("forwarded %d INVITEs to first hop, want 1", len(fwd))
	}
	f := fwd[0]
	vias := f.GetHeaders("Via")
	if len(vias) != 2 {
		t.Fatalf("forwarded INVITE has %d Vias, want 2", len(vias))
	}
	top := vias[0].(*sip.ViaHeader)
	br, _ := top.Params.Get("branch")
	if top.Host != "127.0.0.1" || top.Port != 5060 || !strings.HasPrefix(br, branchPrefix) {
		t.Errorf("top Via = %s", top.Value())
	}
	if mf := f.MaxForwards(); mf == nil || *mf != 69 {
		t.Errorf("Max-Forwards = %v, want 69", mf)
	}
	rr := f.RecordRoute()
	if rr == nil || rr.Address.Host != "127.0.0.1" || rr.Address.Port != 5060 || !rr.Address.UriParams.Has("lr") {
		t.Errorf("Record-Route = %v", rr)
	}
	// The original request is untouched (sipgo's Clone shares pointers).
	if mf := msg(t, invite).(*sip.Request).MaxForwards(); *mf != 70 {
		t.Fatal("test setup")
	}
}

// TestResponsesLeaveInArrivalOrder is the unit-level form of the ordering
// proof: a 180 and a 200 handled back to back leave in that order.
func TestResponsesLeaveInArrivalOrder(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 180, "Ringing"), uas1), now)
	w.handle(inbound(responseTo(t, fwd, 200, "OK"), uas1), now)
	up := responsesTo(rec.take(), uacAddr)
	if got := codes(up); len(got) != 2 || got[0] != 180 || got[1] != 200 {
		t.Fatalf("upstream = %v, want [180 200]", got)
	}
	for _, r := range up {
		if n := len(r.GetHeaders("Via")); n != 1 {
			t.Errorf("%d has %d Vias upstream, want 1 (ours popped)", r.StatusCode, n)
		}
	}
	if w.pending != 0 {
		t.Errorf("pending = %d after 200", w.pending)
	}
}

func TestMaxForwardsZeroGets483(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	req := strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1)
	w.handle(inbound(msg(t, req), uacAddr), time.Unix(1000, 0))
	s := rec.take()
	if got := codes(responsesTo(s, uacAddr)); len(got) != 2 || got[1] != 483 {
		t.Fatalf("upstream = %v, want [100 483]", got)
	}
	if len(requestsTo(s, uas1)) != 0 {
		t.Fatal("request with Max-Forwards 0 was forwarded")
	}
}

func TestLoopGets482(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	// The next hop sends the same request straight back to us.
	back := fwd.Clone()
	params := sip.NewParams()
	params.Add("branch", "z9hG4bK-loop")
	back.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5070, Params: params})
	w.handle(inbound(back, uas1), now)
	if got := codes(responsesTo(rec.take(), uas1)); len(got) != 2 || got[1] != 482 {
		t.Fatalf("looped request got %v, want [100 482]", got)
	}
}

func TestNon2xxIsAckedHopByHopAndUpstreamAckAbsorbed(t *testing.T) {
	w, rec := newTestWorker(t, `
listen: [{address: 127.0.0.1:5060}]
destinations: {uas: {hops: ["127.0.0.1:5070"], failover_on: [503]}}
routes: [{name: default, to: uas}]
`)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 486, "Busy Here"), uas1), now)
	s := rec.take()
	acks := requestsTo(s, uas1)
	if len(acks) != 1 || acks[0].Method != sip.ACK {
		t.Fatalf("downstream got %v, want our ACK", acks)
	}
	b1, _ := fwd.Via().Params.Get("branch")
	b2, _ := acks[0].Via().Params.Get("branch")
	if b1 != b2 {
		t.Errorf("ACK branch %s != INVITE branch %s", b2, b1)
	}
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 486 {
		t.Fatalf("upstream = %v, want [486]", got)
	}
	ack := `
ACK sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-1;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=uas-tag
Call-ID: call-1@test
CSeq: 1 ACK
Content-Length: 0

`
	w.handle(inbound(msg(t, ack), uacAddr), now)
	if s := rec.take(); len(s) != 0 {
		t.Fatalf("upstream ACK for 486 was not absorbed: %v", s[0].msg)
	}
}

func TestCancelRelaysDownstream487(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 180, "Ringing"), uas1), now)
	rec.take()
	cancel := `
CANCEL sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-1;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: call-1@test
CSeq: 1 CANCEL
Content-Length: 0

`
	w.handle(inbound(msg(t, cancel), uacAddr), now)
	s := rec.take()
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 200 {
		t.Fatalf("CANCEL answered %v, want [200]", got)
	}
	down := requestsTo(s, uas1)
	if len(down) != 1 || down[0].Method != sip.CANCEL {
		t.Fatalf("downstream got %v, want CANCEL", down)
	}
	b1, _ := fwd.Via().Params.Get("branch")
	b2, _ := down[0].Via().Params.Get("branch")
	if b1 != b2 {
		t.Errorf("CANCEL branch %s != INVITE branch %s", b2, b1)
	}
	w.handle(inbound(responseTo(t, down[0], 200, "OK"), uas1), now)
	w.handle(inbound(responseTo(t, fwd, 487, "Request Terminated"), uas1), now)
	s = rec.take()
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 487 {
		t.Fatalf("upstream = %v, want [487]", got)
	}
}

func TestSilentNextHopGets408(t *testing.T) {
	w, rec := newTestWorker(t, `
listen: [{address: 127.0.0.1:5060}]
timers: {t1: 100ms}
destinations: {uas: {hops: ["127.0.0.1:5070"]}}
routes: [{name: default, to: uas}]
`)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	rec.take()
	// Timer A retransmits at 0.1, 0.3, 0.7 ... s; Timer B fires at 6.4 s.
	for at := now; at.Before(now.Add(7 * time.Second)); at = at.Add(50 * time.Millisecond) {
		w.fireDue(at)
	}
	s := rec.take()
	if n := len(requestsTo(s, uas1)); n != 6 {
		t.Errorf("%d retransmissions before Timer B, want 6", n)
	}
	// Timer G retransmits the 408 until the UAC ACKs it.
	got := codes(responsesTo(s, uacAddr))
	if len(got) == 0 {
		t.Fatal("no 408 upstream")
	}
	for _, c := range got {
		if c != 408 {
			t.Fatalf("upstream = %v, want only 408s", got)
		}
	}
}

func TestFailoverOn503(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 503, "Service Unavailable"), uas1), now)
	s := rec.take()
	second := requestsTo(s, uas2)
	if len(second) != 1 || second[0].Method != sip.INVITE {
		t.Fatalf("second hop got %v, want the INVITE", second)
	}
	if got := codes(responsesTo(s, uacAddr)); len(got) != 0 {
		t.Fatalf("503 leaked upstream: %v", got)
	}
	w.handle(inbound(responseTo(t, second[0], 200, "OK"), uas2), now)
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 200 {
		t.Fatalf("upstream = %v, want [200]", got)
	}
}

func TestAll503BecomesA500(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	fwd := requestsTo(rec.take(), uas1)[0]
	w.handle(inbound(responseTo(t, fwd, 503, "Service Unavailable"), uas1), now)
	second := requestsTo(rec.take(), uas2)[0]
	w.handle(inbound(responseTo(t, second, 503, "Service Unavailable"), uas2), now)
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 500 {
		t.Fatalf("upstream = %v, want [500] (RFC 3261 §16.7 step 6)", got)
	}
}

func TestInDialogRequestFollowsRouteSet(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	bye := `
BYE sip:bob@127.0.0.1:7000 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-2;rport
Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=uas-tag
Call-ID: call-1@test
CSeq: 2 BYE
Content-Length: 0

`
	w.handle(inbound(msg(t, bye), uacAddr), time.Unix(1000, 0))
	s := rec.take()
	down := requestsTo(s, netip.MustParseAddrPort("127.0.0.1:7000"))
	if len(down) != 1 {
		t.Fatalf("BYE not sent to the Request-URI: %v", s)
	}
	if down[0].Route() != nil {
		t.Errorf("our Route was not popped: %v", down[0].Route())
	}
	if down[0].RecordRoute() != nil {
		t.Error("in-dialog BYE got a Record-Route")
	}
}

func TestAckFor2xxRoutedStatelessly(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	ack := `
ACK sip:bob@127.0.0.1:7000 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-ack;rport
Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=uas-tag
Call-ID: call-1@test
CSeq: 1 ACK
Content-Length: 0

`
	w.handle(inbound(msg(t, ack), uacAddr), time.Unix(1000, 0))
	down := requestsTo(rec.take(), netip.MustParseAddrPort("127.0.0.1:7000"))
	if len(down) != 1 || down[0].Method != sip.ACK {
		t.Fatalf("ACK not forwarded end to end: %v", down)
	}
	if len(w.clients) != 0 || len(w.servers) != 0 {
		t.Error("an ACK for 2xx created a transaction")
	}
}

func TestStrayResponseForwardedStatelessly(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	res := `
SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sv-gone
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-1;received=127.0.0.1;rport=5061
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=uas-tag
Call-ID: call-1@test
CSeq: 1 INVITE
Content-Length: 0

`
	w.handle(inbound(msg(t, res), uas1), time.Unix(1000, 0))
	up := responsesTo(rec.take(), uacAddr)
	if len(up) != 1 || len(up[0].GetHeaders("Via")) != 1 {
		t.Fatalf("stray 200 not relayed with our Via popped: %v", up)
	}
	notOurs := strings.Replace(res, "127.0.0.1:5060;branch=z9hG4bK-sv-gone", "10.9.9.9:5060;branch=z9hG4bK-x", 1)
	w.handle(inbound(msg(t, notOurs), uas1), time.Unix(1000, 0))
	if s := rec.take(); len(s) != 0 {
		t.Fatal("a response whose top Via is not ours was relayed")
	}
}

func TestLargeRequestSwitchesToTCP(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	body := strings.Repeat("a=x-padding:0123456789\n", 80) // ~1.8 kB
	big := strings.Replace(invite, "Content-Length: 0\n", "Content-Type: application/sdp\nContent-Length: "+strconv.Itoa(len(strings.ReplaceAll(body, "\n", "\r\n")))+"\n", 1) + body
	w.handle(inbound(msg(t, big), uacAddr), time.Unix(1000, 0))
	for _, x := range rec.take() {
		if r, ok := x.msg.(*sip.Request); ok {
			if x.out.Proto != transport.TCP || r.Via().Transport != "TCP" {
				t.Fatalf("large INVITE left over %v with Via %s", x.out.Proto, r.Via().Value())
			}
			return
		}
	}
	t.Fatal("large INVITE not forwarded")
}

func TestRetransmittedInviteAnsweredFromState(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	rec.take()
	w.handle(inbound(msg(t, invite), uacAddr), now.Add(500*time.Millisecond))
	s := rec.take()
	if len(requestsTo(s, uas1)) != 0 {
		t.Fatal("retransmitted INVITE was forwarded again")
	}
	if got := codes(responsesTo(s, uacAddr)); len(got) != 1 || got[0] != 100 {
		t.Fatalf("retransmission answered %v, want [100]", got)
	}
}

func TestDrainAnswersLeftoversWith503(t *testing.T) {
	w, rec := newTestWorker(t, twoHops)
	now := time.Unix(1000, 0)
	w.handle(inbound(msg(t, invite), uacAddr), now)
	rec.take()
	w.handleControl(control{kind: ctrlDrain, deadline: now.Add(time.Second)}, now)
	w.checkDrained(now)
	select {
	case <-w.drained:
		t.Fatal("drained with a transaction open")
	default:
	}
	w.fireDue(now.Add(time.Second))
	if got := codes(responsesTo(rec.take(), uacAddr)); len(got) != 1 || got[0] != 503 {
		t.Fatalf("at the drain deadline upstream got %v, want [503]", got)
	}
	w.checkDrained(now.Add(time.Second))
	select {
	case <-w.drained:
	default:
		t.Fatal("not drained after answering everything")
	}
}
