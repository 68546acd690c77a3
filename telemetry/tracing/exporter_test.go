package tracing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/order"
)

func TestTransactionSpan(t *testing.T) {
	e, cc := newTestExporter(t, Config{})
	txn := inviteTxn("call-1@example.com", true)
	e.Export(txn)
	spans := flushSpans(t, e, cc)
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != "INVITE" || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span %q kind %v, want INVITE server", s.Name, s.Kind)
	}
	if !s.Start.Equal(txn.Start) || !s.End.Equal(txn.End) {
		t.Errorf("span %v..%v, want %v..%v", s.Start, s.End, txn.Start, txn.End)
	}
	if s.TraceID != TraceID("call-1@example.com").String() {
		t.Errorf("trace ID %v, want TraceID(Call-ID)", s.TraceID)
	}
	if len(s.SpanID) != 16 || s.SpanID == "0000000000000000" {
		t.Errorf("span ID %q", s.SpanID)
	}
	if s.Parent != "" {
		t.Errorf("transaction span has a parent %v", s.Parent)
	}
	if s.Status.GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("status %v, want unset", s.Status)
	}
	// Sampled, parent not remote (as the SDK's exporter wrote them).
	if s.Flags != 0x101 {
		t.Errorf("flags %#x, want 0x101", s.Flags)
	}
	want := map[string]any{
		AttrSIPMethod:          "INVITE",
		AttrSIPStatusCode:      int64(200),
		AttrSIPCallID:          "call-1@example.com",
		AttrSIPCSeq:            int64(101),
		AttrSIPViaBranch:       "z9hG4bK-abc",
		AttrSIPFromTag:         "tag-a",
		AttrNetworkTransport:   "udp",
		AttrNetworkPeerAddress: "192.0.2.10",
		AttrNetworkPeerPort:    int64(5060),
		AttrServerAddress:      "192.0.2.1",
		AttrServerPort:         int64(5060),
		AttrTxnKind:            "server",
		AttrWorker:             int64(3),
		AttrTSSource:           "kernel",
		AttrMsgsTotal:          int64(7),
		AttrMsgsKernel:         int64(7),
	}
	if got := s.Attrs; !reflect.DeepEqual(got, want) {
		t.Errorf("span attributes\n got %v\nwant %v", got, want)
	}

	if len(s.Events) != len(txn.Msgs) {
		t.Fatalf("%d events, want %d", len(s.Events), len(txn.Msgs))
	}
	for i, ev := range s.Events {
		m := txn.Msgs[i]
		wantName := EventIn
		if m.Dir == observe.Out {
			wantName = EventOut
		}
		if ev.Name != wantName || !ev.Time.Equal(m.Wall) {
			t.Errorf("event %d: %s at %v, want %s at %v", i, ev.Name, ev.Time, wantName, m.Wall)
		}
		a := ev.Attrs
		wantA := map[string]any{
			AttrMsgIndex:           int64(i),
			AttrSIPMethod:          "INVITE",
			AttrMsgRetransmission:  false,
			AttrTSSource:           "kernel",
			AttrMonoNS:             m.Mono,
			AttrKernelMonoNS:       m.Mono,
			AttrUserMonoNS:         m.Msg.Mono,
			AttrPacketID:           int64(m.ID),
			AttrNetworkTransport:   "udp",
			AttrNetworkPeerAddress: m.Peer.Addr().String(),
			AttrNetworkPeerPort:    int64(m.Peer.Port()),
		}
		if m.Status != 0 {
			wantA[AttrSIPStatusCode] = int64(m.Status)
		}
		if m.Dir == observe.Out {
			wantA[AttrMsgRelays] = int64(m.Relays)
		}
		if !reflect.DeepEqual(a, wantA) {
			t.Errorf("event %d attributes\n got %v\nwant %v", i, a, wantA)
		}
	}
	// The 180 out relays the 180 in (index 3).
	if got := s.Events[4].Attrs[AttrMsgRelays]; got != int64(4) {
		t.Errorf("180 out relays %v, want 4", got)
	}
	if st := e.Stats(); st != (Stats{Spans: 1, Exported: 1}) {
		t.Errorf("stats %+v, want 1 span exported", st)
	}
}

func TestResource(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname:", err)
	}
	e, cc := newTestExporter(t, Config{})
	e.Export(inviteTxn("c", false))
	s := flushSpans(t, e, cc)[0]
	got := s.Resource
	for k, v := range map[string]any{
		"service.name":           "sipvigil",
		"service.version":        "v1.2.3-test",
		"host.name":              host,
		"service.instance.id":    host + "/" + strconv.Itoa(os.Getpid()),
		"telemetry.sdk.language": "go",
	} {
		if got[k] != v {
			t.Errorf("resource %s = %v, want %v", k, got[k], v)
		}
	}
	if s.ResourceSchema == "" {
		t.Error("no resource schema URL")
	}
	if s.Scope.GetName() != instrumentationScope || s.Scope.GetVersion() != "v1.2.3-test" {
		t.Errorf("scope %v", s.Scope)
	}

	e2, cc2 := newTestExporter(t, Config{
		ServiceName: "edge",
		ResourceAttributes: map[string]string{
			"service.instance.id": "pod-7", "deployment.environment.name": "lab",
			"service.version": "ignored",
		},
	})
	e2.Export(inviteTxn("c", false))
	got = flushSpans(t, e2, cc2)[0].Resource
	for k, v := range map[string]any{
		"service.name": "edge", "service.instance.id": "pod-7",
		"deployment.environment.name": "lab", "service.version": "v1.2.3-test",
	} {
		if got[k] != v {
			t.Errorf("resource %s = %v, want %v", k, got[k], v)
		}
	}
}

func TestTraceID(t *testing.T) {
	sum := sha256.Sum256([]byte("sipvigil/call-id\x00a84b4c76e66710@pc33.example.com"))
	want := hex.EncodeToString(sum[:16])
	if got := TraceID("a84b4c76e66710@pc33.example.com").String(); got != want {
		t.Errorf("TraceID = %s, want %s", got, want)
	}
	// Long Call-IDs take the streaming path and agree with the one-shot hash.
	long := strings.Repeat("x", 600)
	sum = sha256.Sum256([]byte("sipvigil/call-id\x00" + long))
	if got := TraceID(long).String(); got != hex.EncodeToString(sum[:16]) {
		t.Errorf("TraceID(long) = %s", got)
	}
	if TraceID("a") == TraceID("b") {
		t.Error("different Call-IDs share a trace ID")
	}
	if a, b := TraceID("a"), TraceID("a"); a != b {
		t.Error("TraceID not deterministic")
	}
}

// Two instances handling the same call write into one trace with their
// own span IDs.
func TestTraceIDAcrossInstances(t *testing.T) {
	e1, cc1 := newTestExporter(t, Config{})
	e2, cc2 := newTestExporter(t, Config{})
	e1.Export(inviteTxn("shared-call", true))
	e2.Export(inviteTxn("shared-call", false))
	s1, s2 := flushSpans(t, e1, cc1)[0], flushSpans(t, e2, cc2)[0]
	if s1.TraceID != s2.TraceID {
		t.Errorf("trace IDs differ: %v, %v", s1.TraceID, s2.TraceID)
	}
	if s1.TraceID != TraceID("shared-call").String() {
		t.Error("trace ID is not TraceID(Call-ID)")
	}
	if s1.SpanID == s2.SpanID {
		t.Error("two instances produced the same span ID")
	}
}

func TestRedaction(t *testing.T) {
	const callID = "secret-call@10.1.2.3"
	sum := sha256.Sum256([]byte(callID))
	hashed := "sha256:" + hex.EncodeToString(sum[:])[:16]
	for _, tc := range []struct {
		mode string
		want string
		keep bool
	}{
		{"", callID, true},
		{RedactNone, callID, true},
		{RedactHash, hashed, true},
		{RedactDrop, "", false},
		{"bogus", "", false},
	} {
		v, keep := Redact(tc.mode, callID)
		if v != tc.want || keep != tc.keep {
			t.Errorf("Redact(%q) = %q, %v; want %q, %v", tc.mode, v, keep, tc.want, tc.keep)
		}
		if tc.mode == "bogus" {
			continue
		}
		e, cc := newTestExporter(t, Config{Redact: tc.mode})
		e.Export(inviteTxn(callID, true))
		s := flushSpans(t, e, cc)[0]
		got, present := s.Attrs[AttrSIPCallID]
		if present != tc.keep || (present && got != tc.want) {
			t.Errorf("redact %q: sip.call_id = %v (present %v)", tc.mode, got, present)
		}
		// The trace ID is the Call-ID's either way.
		if s.TraceID != TraceID(callID).String() {
			t.Errorf("redact %q changed the trace ID", tc.mode)
		}
		// Nothing on the wire leaks it.
		if tc.mode != RedactNone && tc.mode != "" {
			for _, raw := range cc.raw {
				if strings.Contains(string(raw), "secret-call") {
					t.Errorf("redact %q: the request leaks the Call-ID", tc.mode)
				}
			}
		}
	}
	if _, err := NewWithClient(context.Background(), Config{Redact: "bogus"}, "", newCaptureClient(), nil); err == nil {
		t.Error("unknown redact mode accepted")
	}
}

func TestViolation(t *testing.T) {
	const ms = int64(time.Millisecond)
	specs := inviteSpecs(true)
	// The 180 leaves after the 200: provisional_after_final.
	specs[4].mono, specs[6].mono = monoBase+902*ms, monoBase+901*ms
	specs[4], specs[5], specs[6] = specs[5], specs[6], specs[4]
	specs[5].relays, specs[6].relays = 5, 4
	txn := buildTxn("v-call", observe.TxnServer, specs)
	txn.Final = 200
	final := order.Forward{In: specs[4].mono, Out: specs[5].mono, Method: "INVITE", Status: 200, CSeq: 101, Ref: 5}
	prov := order.Forward{In: specs[3].mono, Out: specs[6].mono, Method: "INVITE", Status: 180, CSeq: 101, Ref: 6}
	txn.Violations = order.Responses([]order.Forward{prov, final})
	if len(txn.Violations) != 1 {
		t.Fatalf("fixture: %d violations", len(txn.Violations))
	}
	v := txn.Violations[0]

	e, cc := newTestExporter(t, Config{})
	e.Export(txn)
	s := flushSpans(t, e, cc)[0]
	if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || !strings.Contains(s.Status.GetMessage(), v.String()) ||
		!strings.HasPrefix(s.Status.GetMessage(), order.ProvisionalAfterFinal) {
		t.Errorf("status %+v, want Error describing %q", s.Status, v.String())
	}
	var found int
	for _, ev := range s.Events {
		if ev.Name != EventViolation {
			continue
		}
		found++
		a := ev.Attrs
		if a[AttrViolationKind] != order.ProvisionalAfterFinal || a[AttrViolationDetail] != v.String() {
			t.Errorf("violation attributes %v", a)
		}
		// Timestamp: the later message, the 180 that left at 902 ms.
		if want := wallOf(specs[6].mono); !ev.Time.Equal(want) {
			t.Errorf("violation at %v, want %v", ev.Time, want)
		}
	}
	if found != 1 {
		t.Errorf("%d violation events, want 1", found)
	}

	// Several violations: one event each, the status says how many more.
	txn.Violations = append(txn.Violations, order.Violation{Kind: order.RequestReorder,
		First:  order.Forward{In: monoBase - 10, Out: monoBase + 5*ms, Method: "ACK"},
		Second: order.Forward{In: monoBase, Out: monoBase + 3*ms, Method: "INVITE"}})
	cc.reset()
	e.Export(txn)
	s = flushSpans(t, e, cc)[0]
	if !strings.HasSuffix(s.Status.GetMessage(), "(+1 more)") {
		t.Errorf("status %q, want a count of further violations", s.Status.GetMessage())
	}
	var times []time.Time
	for _, ev := range s.Events {
		if ev.Name == EventViolation {
			times = append(times, ev.Time)
		}
	}
	// The ACK's forward is no message of this record: its time comes from
	// the process-wide monotonic→wall offset.
	if len(times) != 2 || !times[1].Equal(wallOf(monoBase+5*ms)) {
		t.Errorf("violation event times %v", times)
	}
}

func TestQueueSpans(t *testing.T) {
	txn := inviteTxn("q-call", true)
	const ms = int64(time.Millisecond)
	txn.Txn.Waits = []observe.Wait{
		{Queue: "pstn", Kind: "queue", Start: monoBase + 100_000, End: monoBase + 300*ms, Delay: 250 * time.Millisecond, Outcome: "released"},
		{Queue: "lnp", Kind: "lookup", Start: monoBase + 300*ms, End: monoBase + 310*ms, Outcome: "done"},
	}
	for i := range txn.Txn.Waits {
		w := &txn.Txn.Waits[i]
		txn.Waits = append(txn.Waits, evidence.Wait{Wait: w, StartWall: wallOf(w.Start), EndWall: wallOf(w.End)})
	}
	e, cc := newTestExporter(t, Config{})
	e.Export(txn)
	spans := flushSpans(t, e, cc)
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	root := spanByName(t, spans, "INVITE")
	for i, name := range []string{"queue pstn", "lookup lnp"} {
		s := spanByName(t, spans, name)
		w := txn.Waits[i]
		if s.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("%s kind %v", name, s.Kind)
		}
		if s.Parent != root.SpanID || s.TraceID != root.TraceID || s.SpanID == root.SpanID {
			t.Errorf("%s is not a child of the transaction span", name)
		}
		if !s.Start.Equal(w.StartWall) || !s.End.Equal(w.EndWall) {
			t.Errorf("%s %v..%v, want %v..%v", name, s.Start, s.End, w.StartWall, w.EndWall)
		}
		want := map[string]any{
			AttrQueueName:       w.Queue,
			AttrQueueKind:       w.Kind,
			AttrQueueDelayNS:    int64(w.Delay),
			AttrQueueWaitNS:     w.End - w.Start,
			AttrQueueOutcome:    w.Outcome,
			AttrWaitStartMonoNS: w.Start,
			AttrWaitEndMonoNS:   w.End,
		}
		if got := s.Attrs; !reflect.DeepEqual(got, want) {
			t.Errorf("%s attributes\n got %v\nwant %v", name, got, want)
		}
	}
	if st := e.Stats(); st.Spans != 3 || st.Exported != 3 {
		t.Errorf("stats %+v, want 3 spans exported", st)
	}
}

func TestTimestampSource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kernel  []bool
		source  string
		nKernel int64
	}{
		{"kernel", []bool{true, true, true, true, true, true, true}, TSSourceKernel, 7},
		{"user", []bool{false, false, false, false, false, false, false}, TSSourceUser, 0},
		{"mixed", []bool{true, true, false, true, true, true, false}, TSSourceMixed, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs := inviteSpecs(false)
			for i := range specs {
				specs[i].kernel = tc.kernel[i]
			}
			txn := buildTxn("ts-"+tc.name, observe.TxnServer, specs)
			e, cc := newTestExporter(t, Config{})
			e.Export(txn)
			s := flushSpans(t, e, cc)[0]
			a := s.Attrs
			if a[AttrTSSource] != tc.source || a[AttrMsgsKernel] != tc.nKernel || a[AttrMsgsTotal] != int64(7) {
				t.Errorf("span source %v kernel %v total %v", a[AttrTSSource], a[AttrMsgsKernel], a[AttrMsgsTotal])
			}
			for i, ev := range s.Events {
				ea := ev.Attrs
				m := txn.Msgs[i]
				_, hasKernel := ea[AttrKernelMonoNS]
				if tc.kernel[i] {
					if ea[AttrTSSource] != TSSourceKernel || !hasKernel || ea[AttrKernelMonoNS] != m.Mono {
						t.Errorf("event %d: kernel-stamped but %v", i, ea)
					}
					if ea[AttrUserMonoNS] == ea[AttrMonoNS] {
						t.Errorf("event %d: user time equals kernel time", i)
					}
				} else {
					if ea[AttrTSSource] != TSSourceUser || hasKernel {
						t.Errorf("event %d: user-stamped but %v", i, ea)
					}
					if ea[AttrMonoNS] != m.Msg.Mono || ea[AttrUserMonoNS] != m.Msg.Mono {
						t.Errorf("event %d: mono %v user %v, want both %d", i, ea[AttrMonoNS], ea[AttrUserMonoNS], m.Msg.Mono)
					}
				}
			}
		})
	}
}

func TestRelayAndAckSpans(t *testing.T) {
	e, cc := newTestExporter(t, Config{})
	relay := buildTxn("r-call", observe.TxnStateless, []msgSpec{
		{dir: observe.In, method: "INVITE", status: 200, peer: callee, mono: monoBase, retx: true},
		{dir: observe.Out, method: "INVITE", status: 200, relays: 1, peer: caller, mono: monoBase + 1000},
	})
	ack := buildTxn("r-call", observe.TxnAck, []msgSpec{
		{dir: observe.In, method: "ACK", peer: caller, mono: monoBase + 5000},
		{dir: observe.Out, method: "ACK", relays: 1, peer: callee, mono: monoBase + 6000},
	})
	ack.Method = "ACK"
	e.Export(relay)
	e.Export(relay)
	e.Export(ack)
	spans := flushSpans(t, e, cc)
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans[:2] {
		if s.Name != "INVITE relay" || s.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("relay span %q kind %v", s.Name, s.Kind)
		}
		a := s.Attrs
		if _, ok := a[AttrSIPStatusCode]; ok {
			t.Error("relay span has sip.status_code")
		}
		if a[AttrTxnKind] != "stateless" || a[AttrNetworkPeerAddress] != "198.51.100.20" {
			t.Errorf("relay attributes %v", a)
		}
		if s.Events[0].Attrs[AttrMsgRetransmission] != true {
			t.Error("retransmission not marked")
		}
		if _, ok := s.Events[0].Attrs[AttrMsgRelays]; ok {
			t.Error("sip.in event has sipvigil.msg.relays")
		}
	}
	s := spans[2]
	if s.Name != "ACK" || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Attrs[AttrTxnKind] != "ack" {
		t.Errorf("ack span %q kind %v attrs %v", s.Name, s.Kind, s.Attrs)
	}
	if _, ok := s.Attrs[AttrSIPStatusCode]; ok {
		t.Error("ACK span has sip.status_code")
	}
	if spans[0].TraceID != s.TraceID {
		t.Error("transactions of one call in different traces")
	}
}

func TestSampling(t *testing.T) {
	e, cc := newTestExporter(t, Config{SampleRatio: SampleNone})
	for i := range 100 {
		e.Export(inviteTxn("c"+strconv.Itoa(i), true))
	}
	if spans := flushSpans(t, e, cc); len(spans) != 0 {
		t.Errorf("ratio 0 exported %d spans", len(spans))
	}
	if st := e.Stats(); st != (Stats{}) {
		t.Errorf("ratio 0 stats %+v", st)
	}
	// A sampled-out call costs a hash and no allocation.
	txn := inviteTxn("sampled-out", true)
	if n := testing.AllocsPerRun(100, func() { e.Export(txn) }); n != 0 {
		t.Errorf("sampled-out Export: %v allocations", n)
	}

	// Two instances at the same ratio keep the same calls, and the SDK's
	// ratio sampler (which cmd/sipvigil asks for exemplars) agrees.
	sdk := sdktrace.TraceIDRatioBased(0.5)
	keep := func() map[string]bool {
		e, cc := newTestExporter(t, Config{SampleRatio: 0.5})
		for i := range 400 {
			e.Export(inviteTxn("c"+strconv.Itoa(i), true))
		}
		kept := make(map[string]bool)
		for _, s := range flushSpans(t, e, cc) {
			kept[s.TraceID] = true
		}
		return kept
	}
	a, b := keep(), keep()
	if !reflect.DeepEqual(a, b) {
		t.Error("two instances sampled different calls")
	}
	if len(a) < 120 || len(a) > 280 {
		t.Errorf("ratio 0.5 kept %d of 400 calls", len(a))
	}
	for i := range 400 {
		id := TraceID("c" + strconv.Itoa(i))
		want := sdk.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample
		if a[id.String()] != want {
			t.Errorf("call c%d: kept %v, SDK sampler says %v", i, a[id.String()], want)
		}
	}
}

func TestNilAndEmpty(t *testing.T) {
	var e *Exporter
	e.Export(inviteTxn("c", true))
	if e.Stats() != (Stats{}) || e.ForceFlush(context.Background()) != nil || e.Shutdown(context.Background()) != nil {
		t.Error("nil Exporter is not a no-op")
	}
	e2, cc := newTestExporter(t, Config{})
	e2.Export(nil)
	e2.Export(&evidence.Txn{})
	// A record without messages still makes a span.
	empty := buildTxn("empty", observe.TxnServer, nil)
	empty.Start, empty.End = wallBase, wallBase.Add(time.Millisecond)
	e2.Export(empty)
	spans := flushSpans(t, e2, cc)
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if len(spans[0].Events) != 0 || !spans[0].Start.Equal(wallBase) {
		t.Errorf("empty record span %+v", spans[0])
	}
	a := spans[0].Attrs
	if a[AttrTSSource] != TSSourceUser || a[AttrMsgsTotal] != int64(0) {
		t.Errorf("empty record attributes %v", a)
	}
	if _, ok := a[AttrNetworkPeerAddress]; ok {
		t.Error("peer address without an inbound message")
	}
}

func TestShutdownStopsExport(t *testing.T) {
	cc := newCaptureClient()
	// Neither the batch size nor the timeout would send the spans.
	e, err := NewWithClient(context.Background(), Config{BatchTimeout: time.Hour}, "v", cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.Export(inviteTxn("a"+strconv.Itoa(i), true))
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st != (Stats{Spans: 5, Exported: 5}) {
		t.Errorf("Shutdown flushed: stats %+v, want 5 spans exported", st)
	}
	if n := len(stubs(t, cc.requests())); n != 5 || cc.started != 1 || cc.stopped != 1 {
		t.Errorf("client got %d spans, started %d, stopped %d times", n, cc.started, cc.stopped)
	}
	e.Export(inviteTxn("b", true)) // must neither block nor panic
	if st := e.Stats(); st.Spans != 5 {
		t.Errorf("stats after shutdown %+v", st)
	}
	if err := e.Shutdown(context.Background()); err != nil || cc.stopped != 1 {
		t.Errorf("second Shutdown: %v, client stopped %d times", err, cc.stopped)
	}
	if err := e.ForceFlush(context.Background()); err != nil {
		t.Errorf("ForceFlush after Shutdown: %v", err)
	}
}

// A long transaction keeps every message up to the event limit (the
// SDK's default of 128 would have evicted some); past it, the span says
// how many it dropped.
func TestManyMessages(t *testing.T) {
	for _, tc := range []struct{ msgs, events, dropped int }{
		{300, 300, 0},
		{eventLimit + 76, eventLimit, 76},
	} {
		specs := make([]msgSpec, tc.msgs)
		for i := range specs {
			specs[i] = msgSpec{dir: observe.Out, method: "INVITE", peer: callee, mono: monoBase + int64(i)*1000, retx: i > 0}
		}
		e, cc := newTestExporter(t, Config{})
		e.Export(buildTxn("many", observe.TxnServer, specs))
		s := flushSpans(t, e, cc)[0]
		if len(s.Events) != tc.events || int(s.DroppedEvents) != tc.dropped {
			t.Errorf("%d messages: %d events, %d dropped; want %d, %d", tc.msgs, len(s.Events), s.DroppedEvents, tc.events, tc.dropped)
		}
		if got := s.Events[len(s.Events)-1].Attrs[AttrMsgIndex]; got != int64(tc.events-1) {
			t.Errorf("%d messages: last event has index %v", tc.msgs, got)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"protocol", Config{Protocol: "http/json"}, "protocol"},
		{"compression", Config{Compression: "zstd"}, "compression"},
		{"ratio", Config{SampleRatio: 1.5}, "sample_ratio"},
		{"batch", Config{QueueSize: 10, BatchSize: 20}, "batch_size"},
		{"negative", Config{QueueSize: -1}, "queue_size"},
		{"timeout", Config{ExportTimeout: -time.Second}, "export_timeout"},
		{"cert without key", Config{CertFile: "c.pem"}, "key_file"},
		{"endpoint", Config{Endpoint: "collector"}, "endpoint"},
		{"scheme", Config{Endpoint: "ftp://c:1"}, "endpoint"},
		{"https insecure", Config{Endpoint: "https://c:4318", Insecure: true}, "insecure"},
		{"http with tls", Config{Endpoint: "http://c:4318", CAFile: "ca.pem"}, "https"},
		{"insecure with tls", Config{Endpoint: "c:4318", Insecure: true, CAFile: "ca.pem"}, "insecure"},
	} {
		_, err := NewWithClient(context.Background(), tc.cfg, "v", newCaptureClient(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewWithClient(context.Background(), Config{}, "v", nil, nil); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := New(context.Background(), Config{Endpoint: "https://c:4318", CAFile: "/nonexistent/ca.pem"}, "v", nil); err == nil ||
		!strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Endpoint: defaultHTTPEndpoint, Protocol: ProtocolHTTP, Compression: CompressionNone,
		SampleRatio: 1, QueueSize: 65536, BatchSize: 2048, BatchTimeout: time.Second,
		ExportTimeout: 10 * time.Second, ServiceName: "sipvigil", Redact: RedactNone,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", c, want)
	}
	c, _ = Config{Protocol: ProtocolGRPC, QueueSize: 100}.withDefaults()
	if c.Endpoint != defaultGRPCEndpoint || c.BatchSize != 100 {
		t.Errorf("grpc defaults: endpoint %q batch %d", c.Endpoint, c.BatchSize)
	}
	for _, tc := range []struct {
		cfg  Config
		want endpoint
	}{
		{Config{Endpoint: "c:4318"}, endpoint{"c:4318", "/v1/traces", false}},
		{Config{Endpoint: "c:4318", Insecure: true}, endpoint{"c:4318", "/v1/traces", true}},
		{Config{Endpoint: "http://c:4318"}, endpoint{"c:4318", "/v1/traces", true}},
		{Config{Endpoint: "https://c/otlp/v1/traces"}, endpoint{"c", "/otlp/v1/traces", false}},
		{Config{Endpoint: "http://c:4318/"}, endpoint{"c:4318", "/", true}},
	} {
		got, err := parseEndpoint(tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v", tc.cfg.Endpoint, got, err, tc.want)
		}
	}
}

// Batch buffers are reused once uploaded: spans of one batch must not
// show up in, or be overwritten by, the next.
func TestBufferReuseIsSafe(t *testing.T) {
	e, cc := newTestExporter(t, Config{BatchSize: 2, BatchTimeout: time.Hour})
	for i := range 6 {
		e.Export(inviteTxn("r"+strconv.Itoa(i), i%2 == 0))
	}
	spans := flushSpans(t, e, cc)
	if len(spans) != 6 {
		t.Fatalf("%d spans, want 6", len(spans))
	}
	for i, s := range spans {
		if s.Attrs[AttrSIPCallID] != "r"+strconv.Itoa(i) {
			t.Errorf("span %d has Call-ID %v", i, s.Attrs[AttrSIPCallID])
		}
		for j, ev := range s.Events {
			if got := ev.Attrs[AttrMsgIndex]; got != int64(j) {
				t.Fatalf("span %d event %d has index %v", i, j, got)
			}
		}
	}
}

// The hand-written encoder produces exactly the bytes the generated OTLP
// types marshal for the same spans: same fields, same order, canonical
// varints, proto3 defaults left out.
func TestEncodingMatchesGeneratedTypes(t *testing.T) {
	const ms = int64(time.Millisecond)
	e, cc := newTestExporter(t, Config{BatchTimeout: time.Hour})
	violating := inviteTxn("v@x", true)
	violating.Violations = []order.Violation{{Kind: order.RequestReorder,
		First:  order.Forward{In: monoBase - 10, Out: monoBase + 5*ms, Method: "ACK"},
		Second: order.Forward{In: monoBase, Out: monoBase + 3*ms, Method: "INVITE"}}}
	waiting := inviteTxn("w@x", false)
	waiting.Txn.Waits = []observe.Wait{{Queue: "pstn", Kind: "queue", Start: monoBase, End: monoBase + 300*ms, Delay: time.Second, Outcome: "released"}}
	waiting.Waits = []evidence.Wait{{Wait: &waiting.Txn.Waits[0], StartWall: wallOf(monoBase), EndWall: wallOf(monoBase + 300*ms)}}
	long := make([]msgSpec, 200) // a span longer than 16 KiB: a 3-byte length
	for i := range long {
		long[i] = msgSpec{dir: observe.Out, method: "INVITE", peer: callee, mono: monoBase + int64(i)*1000, retx: true}
	}
	longID := strings.Repeat("c", 300) // a string longer than 127 bytes
	v6 := buildTxn("v6", observe.TxnServer, []msgSpec{
		{dir: observe.In, method: "OPTIONS", peer: netip.MustParseAddrPort("[2001:db8::1]:5060"), mono: monoBase},
	})
	for _, txn := range append(callTxns("call@x", true),
		violating, waiting, buildTxn("long", observe.TxnServer, long), inviteTxn(longID, false), v6,
		buildTxn("empty", observe.TxnStateless, nil)) {
		e.Export(txn)
	}
	if err := e.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(cc.reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(cc.reqs))
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(cc.reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cc.raw[0], want) {
		t.Errorf("encoded request (%d bytes) differs from the generated types' encoding (%d bytes)", len(cc.raw[0]), len(want))
	}
	if n := len(stubs(t, cc.reqs)); n != 10 {
		t.Errorf("%d spans, want 10", n)
	}
}

func TestSpanIDsUnique(t *testing.T) {
	e, cc := newTestExporter(t, Config{})
	for i := range 500 {
		e.Export(inviteTxn("c"+strconv.Itoa(i%7), true))
	}
	seen := make(map[string]bool)
	for _, s := range flushSpans(t, e, cc) {
		if seen[s.SpanID] || s.SpanID == "0000000000000000" {
			t.Fatalf("span ID %s repeated or zero", s.SpanID)
		}
		seen[s.SpanID] = true
	}
	if len(seen) != 500 {
		t.Errorf("%d span IDs", len(seen))
	}
}

// A batch goes out as soon as it holds BatchSize spans, without waiting
// for the timeout; what is left waits for ForceFlush (or the timeout).
func TestBatchSize(t *testing.T) {
	e, cc := newTestExporter(t, Config{BatchSize: 4, BatchTimeout: time.Hour})
	for i := range 10 {
		e.Export(inviteTxn("b"+strconv.Itoa(i), true))
	}
	cc.waitUploads(t, 2)
	reqs := cc.requests()
	for i, req := range reqs {
		if n := len(stubs(t, []*coltracepb.ExportTraceServiceRequest{req})); n != 4 {
			t.Errorf("batch %d: %d spans, want 4", i, n)
		}
	}
	if st := waitStats(t, e, func(st Stats) bool { return st.Exported == 8 }); st.Spans != 10 {
		t.Errorf("before flush: stats %+v, want 10 spans, 8 exported", st)
	}
	spans := flushSpans(t, e, cc)
	if len(cc.requests()) != 3 || len(spans) != 10 {
		t.Errorf("after flush: %d requests, %d spans; want 3, 10", len(cc.requests()), len(spans))
	}
	// A transaction's spans stay in one batch, even past BatchSize.
	cc.reset()
	txn := inviteTxn("waits", true)
	for i := range 6 {
		w := observe.Wait{Queue: "q" + strconv.Itoa(i), Kind: "queue", Start: monoBase, End: monoBase + 1000, Outcome: "released"}
		txn.Txn.Waits = append(txn.Txn.Waits, w)
	}
	for i := range txn.Txn.Waits {
		txn.Waits = append(txn.Waits, evidence.Wait{Wait: &txn.Txn.Waits[i], StartWall: wallBase, EndWall: wallBase})
	}
	e.Export(txn)
	cc.waitUploads(t, 1)
	if reqs := cc.requests(); len(reqs) != 1 || len(stubs(t, reqs)) != 7 {
		t.Errorf("a 7-span transaction was split: %d requests", len(reqs))
	}
}

// A batch that does not fill up goes out after BatchTimeout.
func TestBatchTimeout(t *testing.T) {
	const timeout = 30 * time.Millisecond
	e, cc := newTestExporter(t, Config{BatchSize: 1000, BatchTimeout: timeout})
	start := time.Now()
	for i := range 3 {
		e.Export(inviteTxn("t"+strconv.Itoa(i), true))
	}
	cc.waitUploads(t, 1)
	if d := time.Since(start); d < timeout {
		t.Errorf("batch sent after %v, before the %v timeout", d, timeout)
	}
	if spans := stubs(t, cc.requests()); len(spans) != 3 {
		t.Errorf("%d spans, want 3", len(spans))
	}
	// The timer restarts with the next batch.
	e.Export(inviteTxn("t3", true))
	cc.waitUploads(t, 2)
	waitStats(t, e, func(st Stats) bool { return st == Stats{Spans: 4, Exported: 4} })
}

// With the sender stuck on a slow upload, Export does not wait: full
// batches queue up to QueueSize spans and the next ones are dropped and
// counted.
func TestQueueFullDrops(t *testing.T) {
	cc := newCaptureClient()
	hold := make(chan struct{})
	cc.hold, cc.entered = hold, make(chan struct{}, 16)
	e, err := NewWithClient(context.Background(), Config{QueueSize: 4, BatchSize: 2, BatchTimeout: time.Hour}, "v", cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Shutdown(context.Background()) }()
	export := func(n int) {
		for i := range n {
			t0 := time.Now()
			e.Export(inviteTxn("q"+strconv.Itoa(i), true))
			if d := time.Since(t0); d > 100*time.Millisecond {
				t.Errorf("Export took %v", d)
			}
		}
	}
	export(2) // batch 1: the sender takes it and blocks
	<-cc.entered
	export(4) // batches 2 and 3: the queue (4 spans) is full
	if st := e.Stats(); st.Dropped != 0 {
		t.Fatalf("dropped before the queue was full: %+v", st)
	}
	export(3) // batch 4 dropped; one span waits in the current batch
	if st := e.Stats(); st.Spans != 9 || st.Dropped != 2 || st.Exported != 0 {
		t.Errorf("stats %+v, want 9 spans, 2 dropped", st)
	}
	// ForceFlush waits for room instead of dropping its last batch.
	flushed := make(chan error, 1)
	go func() { flushed <- e.ForceFlush(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	close(hold)
	if err := <-flushed; err != nil {
		t.Errorf("ForceFlush: %v", err)
	}
	if st := e.Stats(); st != (Stats{Spans: 9, Exported: 7, Dropped: 2}) {
		t.Errorf("stats %+v, want 7 exported, 2 dropped", st)
	}
}

// Export errors are counted, logged once per failing streak, and reported
// by ForceFlush; exports recover with the client.
func TestExportErrorsCounted(t *testing.T) {
	e, cc := newTestExporter(t, Config{BatchTimeout: time.Hour})
	cc.setErr(errCollector)
	for i := range 5 {
		e.Export(inviteTxn("e"+strconv.Itoa(i), true))
	}
	err := e.ForceFlush(context.Background()) // one batch of 5
	if err == nil || !strings.Contains(err.Error(), "5 spans lost to export errors") || !errors.Is(err, errCollector) {
		t.Errorf("ForceFlush: %v", err)
	}
	if st := e.Stats(); st != (Stats{Spans: 5, ExportFailed: 5}) {
		t.Errorf("stats %+v, want 5 failed", st)
	}
	cc.setErr(nil)
	e.Export(inviteTxn("ok", true))
	if err := e.ForceFlush(context.Background()); err != nil {
		t.Errorf("ForceFlush after recovery: %v", err)
	}
	if st := e.Stats(); st != (Stats{Spans: 6, Exported: 1, ExportFailed: 5}) {
		t.Errorf("stats %+v after recovery", st)
	}
}

// A Shutdown that runs out of time cancels the upload in flight, drops
// what is queued, and still accounts for every span.
func TestShutdownTimeout(t *testing.T) {
	cc := newCaptureClient()
	cc.hold, cc.entered = make(chan struct{}), make(chan struct{}, 16)
	e, err := NewWithClient(context.Background(), Config{BatchSize: 2, BatchTimeout: time.Hour}, "v", cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		e.Export(inviteTxn("s"+strconv.Itoa(i), true))
	}
	<-cc.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = e.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	st := e.Stats()
	if st.Spans != 7 || st.Exported != 0 || st.ExportFailed+st.Dropped != 7 || st.ExportFailed != 2 {
		t.Errorf("stats %+v: want the 2 spans in flight failed and 5 dropped", st)
	}
	if cc.stopped != 1 {
		t.Errorf("client stopped %d times", cc.stopped)
	}
}

// Export does not allocate once its buffers have grown.
func TestExportAllocations(t *testing.T) {
	e, err := NewWithClient(context.Background(), Config{BatchTimeout: time.Hour}, "v", &countingClient{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Shutdown(context.Background()) }()
	txns := callTxns("alloc@x", true)
	for range 10 {
		for _, txn := range txns {
			e.Export(txn)
		}
	}
	if n := testing.AllocsPerRun(200, func() {
		for _, txn := range txns {
			e.Export(txn)
		}
	}); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

// SIP strings come from the network; invalid UTF-8 must not make the
// request undecodable (proto3 strings are UTF-8).
func TestInvalidUTF8(t *testing.T) {
	e, cc := newTestExporter(t, Config{})
	txn := inviteTxn("bad\xffcall", true)
	txn.Method, txn.FromTag = "INV\xc3", "tag\xfe"
	e.Export(txn)
	spans := flushSpans(t, e, cc) // captureClient decodes with proto.Unmarshal
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Attrs[AttrSIPCallID] != "bad\ufffdcall" || s.Attrs[AttrSIPFromTag] != "tag\ufffd" || s.Name != "INV\ufffd" {
		t.Errorf("span %q attributes %v", s.Name, s.Attrs)
	}
	if s.TraceID != TraceID("bad\xffcall").String() {
		t.Error("trace ID not derived from the raw Call-ID")
	}
}
