package tracing

import (
	"bytes"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/audit"
	"sipvigil/telemetry/order"
)

// What Export writes, `sipvigil audit` reads back: the spans go through
// protobuf JSON (as a backend would return them) into the audit's decoder
// and analysis, which must find the calls, every message, and the one
// ordering violation.
func TestAuditReadsSpansBack(t *testing.T) {
	e, cc := newTestExporter(t, Config{})
	for _, id := range []string{"audit-1@x", "audit-2@x"} {
		for _, txn := range callTxns(id, true) {
			e.Export(txn)
		}
	}
	// The 180 leaves after the 200 (TestViolation's record).
	const ms = int64(time.Millisecond)
	specs := inviteSpecs(true)
	specs[4].mono, specs[6].mono = monoBase+902*ms, monoBase+901*ms
	specs[4], specs[5], specs[6] = specs[5], specs[6], specs[4]
	specs[5].relays, specs[6].relays = 5, 4
	bad := buildTxn("audit-bad@x", observe.TxnServer, specs)
	bad.Final = 200
	bad.Violations = order.Responses([]order.Forward{
		{In: specs[3].mono, Out: specs[6].mono, Method: "INVITE", Status: 180, CSeq: 101, Ref: 6},
		{In: specs[4].mono, Out: specs[5].mono, Method: "INVITE", Status: 200, CSeq: 101, Ref: 5},
	})
	e.Export(bad)
	flushSpans(t, e, cc)

	var js bytes.Buffer
	for _, req := range cc.requests() {
		b, err := protojson.Marshal(&tracepb.TracesData{ResourceSpans: req.GetResourceSpans()})
		if err != nil {
			t.Fatal(err)
		}
		js.Write(b)
		js.WriteByte('\n')
	}
	var spans []audit.Span
	if err := audit.DecodeOTLPJSON(&js, func(s audit.Span) error {
		spans = append(spans, s)
		return nil
	}); err != nil {
		t.Fatalf("audit decode: %v", err)
	}
	r := audit.Analyze(spans)
	if r.Calls != 3 || r.Transactions != 7 || r.Messages != 2*13+7 || r.KernelMessages != r.Messages {
		t.Errorf("audit: %d calls, %d transactions, %d messages (%d kernel); want 3, 7, 33 (all)",
			r.Calls, r.Transactions, r.Messages, r.KernelMessages)
	}
	if r.ViolationCount != 1 || r.ViolationsByKind[order.ProvisionalAfterFinal] != 1 || r.ProxyReported != 1 {
		t.Errorf("audit: %d violations %v, proxy reported %d; want the one provisional_after_final",
			r.ViolationCount, r.ViolationsByKind, r.ProxyReported)
	}
	if r.IncompleteSpans != 0 || r.UnpairedForwards != 0 || len(r.Instances) != 1 {
		t.Errorf("audit: %d incomplete spans, %d unpaired forwards, instances %v",
			r.IncompleteSpans, r.UnpairedForwards, r.Instances)
	}
	if c := r.Call(TraceID("audit-bad@x").String()); c == nil || len(c.Violations) != 1 {
		t.Errorf("the violating call is not found by its trace ID")
	}
}
