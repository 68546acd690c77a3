package tracing

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
)

// Addresses of the test call: caller → proxy → callee.
var (
	caller = netip.MustParseAddrPort("192.0.2.10:5060")
	proxy  = netip.MustParseAddrPort("192.0.2.1:5060")
	callee = netip.MustParseAddrPort("198.51.100.20:5080")
)

// Clock of the test records: monotonic base and its wall-clock image.
const monoBase = int64(5_000_000_000)

var wallBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func wallOf(mono int64) time.Time { return wallBase.Add(time.Duration(mono - monoBase)) }

// msgSpec is one message of a hand-made record. mono is the best
// timestamp; a kernel-stamped message's user time is 20µs off it.
type msgSpec struct {
	dir    observe.Direction
	method string
	status int
	relays int
	peer   netip.AddrPort
	mono   int64
	kernel bool
	retx   bool
}

// userLag is how far the user-space time trails (In) or leads (Out) the
// kernel time in the test records.
const userLag = 20_000

func buildTxn(callID string, kind observe.TxnKind, specs []msgSpec) *evidence.Txn {
	ot := &observe.Txn{
		Worker:  3,
		CallID:  callID,
		Method:  "INVITE",
		CSeq:    101,
		Branch:  "z9hG4bK-abc",
		FromTag: "tag-a",
		Kind:    kind,
	}
	t := &evidence.Txn{Txn: ot}
	for i, s := range specs {
		user := s.mono
		if s.kernel {
			if s.dir == observe.In {
				user = s.mono + userLag
			} else {
				user = s.mono - userLag
			}
		}
		om := observe.Msg{
			ID:             uint64(1000 + i),
			Dir:            s.dir,
			Mono:           user,
			Method:         s.method,
			Status:         s.status,
			Proto:          observe.ProtoUDP,
			Local:          proxy,
			Peer:           s.peer,
			Relays:         s.relays,
			Retransmission: s.retx,
		}
		ot.Msgs = append(ot.Msgs, om)
	}
	for i, s := range specs {
		src := evidence.SourceUser
		if s.kernel {
			src = evidence.SourceKernel
		}
		t.Msgs = append(t.Msgs, evidence.Msg{Msg: &ot.Msgs[i], Mono: s.mono, Source: src, Wall: wallOf(s.mono)})
	}
	if len(specs) > 0 {
		ot.Start = ot.Msgs[0].Mono
		ot.End = ot.Msgs[len(ot.Msgs)-1].Mono + 1000
		t.Start = wallOf(specs[0].mono)
		t.End = wallOf(specs[len(specs)-1].mono)
	}
	return t
}

// inviteSpecs is the typical INVITE transaction: INVITE in, 100 out,
// INVITE out, 180 in, 180 out, 200 in, 200 out.
func inviteSpecs(kernel bool) []msgSpec {
	const ms = int64(time.Millisecond)
	return []msgSpec{
		{dir: observe.In, method: "INVITE", peer: caller, mono: monoBase, kernel: kernel},
		{dir: observe.Out, method: "INVITE", status: 100, peer: caller, mono: monoBase + 1*ms, kernel: kernel},
		{dir: observe.Out, method: "INVITE", relays: 1, peer: callee, mono: monoBase + 2*ms, kernel: kernel},
		{dir: observe.In, method: "INVITE", status: 180, peer: callee, mono: monoBase + 50*ms, kernel: kernel},
		{dir: observe.Out, method: "INVITE", status: 180, relays: 4, peer: caller, mono: monoBase + 51*ms, kernel: kernel},
		{dir: observe.In, method: "INVITE", status: 200, peer: callee, mono: monoBase + 900*ms, kernel: kernel},
		{dir: observe.Out, method: "INVITE", status: 200, relays: 6, peer: caller, mono: monoBase + 901*ms, kernel: kernel},
	}
}

func inviteTxn(callID string, kernel bool) *evidence.Txn {
	t := buildTxn(callID, observe.TxnServer, inviteSpecs(kernel))
	t.Final = 200
	return t
}

// ackTxn and byeTxn complete the call of inviteTxn: the ACK for the 200
// (in, forwarded) and the BYE transaction (in, forwarded, 200 in, 200
// out).
func ackTxn(callID string, kernel bool) *evidence.Txn {
	const ms = int64(time.Millisecond)
	t := buildTxn(callID, observe.TxnAck, []msgSpec{
		{dir: observe.In, method: "ACK", peer: caller, mono: monoBase + 950*ms, kernel: kernel},
		{dir: observe.Out, method: "ACK", relays: 1, peer: callee, mono: monoBase + 951*ms, kernel: kernel},
	})
	t.Method = "ACK"
	return t
}

func byeTxn(callID string, kernel bool) *evidence.Txn {
	const s = int64(time.Second)
	t := buildTxn(callID, observe.TxnServer, []msgSpec{
		{dir: observe.In, method: "BYE", peer: callee, mono: monoBase + 60*s, kernel: kernel},
		{dir: observe.Out, method: "BYE", relays: 1, peer: caller, mono: monoBase + 60*s + 1e6, kernel: kernel},
		{dir: observe.In, method: "BYE", status: 200, peer: caller, mono: monoBase + 60*s + 30e6, kernel: kernel},
		{dir: observe.Out, method: "BYE", status: 200, relays: 3, peer: callee, mono: monoBase + 60*s + 31e6, kernel: kernel},
	})
	t.Method, t.CSeq, t.FromTag, t.Branch, t.Final = "BYE", 2, "tag-b", "z9hG4bK-bye", 200
	return t
}

// callTxns is a whole call: INVITE, ACK and BYE transactions (13
// messages, 3 spans).
func callTxns(callID string, kernel bool) []*evidence.Txn {
	return []*evidence.Txn{inviteTxn(callID, kernel), ackTxn(callID, kernel), byeTxn(callID, kernel)}
}

// captureClient is an otlptrace.Client that keeps what it was asked to
// upload, decoded from the wire bytes the real clients would send (the
// exporter reuses its buffers once UploadTraces returns).
type captureClient struct {
	mu       sync.Mutex
	reqs     []*coltracepb.ExportTraceServiceRequest
	raw      [][]byte
	uploads  int
	err      error         // returned by UploadTraces
	hold     chan struct{} // when not nil, UploadTraces waits for it to close (or ctx)
	entered  chan struct{} // when not nil, signalled as an upload starts
	started  int
	stopped  int
	uploaded chan struct{} // cap 1024: one token per finished upload
}

func newCaptureClient() *captureClient {
	return &captureClient{uploaded: make(chan struct{}, 1024)}
}

func (c *captureClient) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started++
	return nil
}

func (c *captureClient) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped++
	return nil
}

func (c *captureClient) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	raw, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		return err
	}
	c.mu.Lock()
	hold, entered := c.hold, c.entered
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploads++
	select {
	case c.uploaded <- struct{}{}:
	default:
	}
	if c.err != nil {
		return c.err
	}
	c.reqs = append(c.reqs, req)
	c.raw = append(c.raw, raw)
	return nil
}

func (c *captureClient) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// waitUploads waits until n uploads have finished since the client was
// made (or reset), or fails the test after a few seconds.
func (c *captureClient) waitUploads(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		got := c.uploads
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.uploaded:
		case <-deadline:
			t.Fatalf("%d uploads after 5s, want %d", got, n)
		}
	}
}

// waitStats waits until e's counters satisfy ok, or fails the test after
// a few seconds. (The client returns before the exporter counts.)
func waitStats(t testing.TB, e *Exporter, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v after 5s", st)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *captureClient) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs, c.raw, c.uploads = nil, nil, 0
}

// requests returns the decoded requests received so far.
func (c *captureClient) requests() []*coltracepb.ExportTraceServiceRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*coltracepb.ExportTraceServiceRequest(nil), c.reqs...)
}

// spanStub is one decoded span with what the tests look at.
type spanStub struct {
	TraceID, SpanID, Parent string // hex; Parent "" for a root
	Name                    string
	Kind                    tracepb.Span_SpanKind
	Start, End              time.Time
	Attrs                   map[string]any
	Events                  []eventStub
	Status                  *tracepb.Status
	DroppedEvents           uint32
	Flags                   uint32
	Resource                map[string]any
	ResourceSchema          string
	Scope                   *commonpb.InstrumentationScope
}

type eventStub struct {
	Name  string
	Time  time.Time
	Attrs map[string]any
}

// stubs flattens requests into spans.
func stubs(t testing.TB, reqs []*coltracepb.ExportTraceServiceRequest) []spanStub {
	t.Helper()
	var out []spanStub
	for _, req := range reqs {
		for _, rs := range req.GetResourceSpans() {
			res := attrMap(t, rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					st := spanStub{
						TraceID: hexOf(s.GetTraceId()), SpanID: hexOf(s.GetSpanId()), Parent: hexOf(s.GetParentSpanId()),
						Name: s.GetName(), Kind: s.GetKind(),
						Start:         time.Unix(0, int64(s.GetStartTimeUnixNano())).UTC(),
						End:           time.Unix(0, int64(s.GetEndTimeUnixNano())).UTC(),
						Attrs:         attrMap(t, s.GetAttributes()),
						Status:        s.GetStatus(),
						DroppedEvents: s.GetDroppedEventsCount(),
						Flags:         s.GetFlags(),
						Resource:      res, ResourceSchema: rs.GetSchemaUrl(),
						Scope: ss.GetScope(),
					}
					for _, ev := range s.GetEvents() {
						st.Events = append(st.Events, eventStub{
							Name: ev.GetName(), Time: time.Unix(0, int64(ev.GetTimeUnixNano())).UTC(),
							Attrs: attrMap(t, ev.GetAttributes()),
						})
					}
					out = append(out, st)
				}
			}
		}
	}
	return out
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// attrMap decodes attributes, failing on a key that appears twice.
func attrMap(t testing.TB, kvs []*commonpb.KeyValue) map[string]any {
	t.Helper()
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		if _, dup := m[kv.GetKey()]; dup {
			t.Errorf("attribute %s appears twice", kv.GetKey())
		}
		var v any
		switch x := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			v = x.StringValue
		case *commonpb.AnyValue_IntValue:
			v = x.IntValue
		case *commonpb.AnyValue_BoolValue:
			v = x.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			v = x.DoubleValue
		default:
			t.Errorf("attribute %s: unexpected value %v", kv.GetKey(), kv.GetValue())
		}
		m[kv.GetKey()] = v
	}
	return m
}

// newTestExporter builds an Exporter over a capturing client, with a
// short batch timeout, and shuts it down with the test.
func newTestExporter(t testing.TB, cfg Config) (*Exporter, *captureClient) {
	t.Helper()
	cc := newCaptureClient()
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = 10 * time.Millisecond
	}
	e, err := NewWithClient(context.Background(), cfg, "v1.2.3-test", cc, nil)
	if err != nil {
		t.Fatalf("NewWithClient: %v", err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e, cc
}

// flushSpans flushes e and returns every span cc has received.
func flushSpans(t testing.TB, e *Exporter, cc *captureClient) []spanStub {
	t.Helper()
	if err := e.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	return stubs(t, cc.requests())
}

// spanByName returns the only span called name.
func spanByName(t testing.TB, spans []spanStub, name string) spanStub {
	t.Helper()
	var found []spanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1 (of %d spans)", len(found), name, len(spans))
	}
	return found[0]
}

var errCollector = errors.New("collector says no")
