package audit

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sipvigil/telemetry/order"
)

func kinds(vs []Violation) []string {
	var k []string
	for _, v := range vs {
		k = append(k, v.Kind)
	}
	slices.Sort(k)
	return k
}

func TestCleanCall(t *testing.T) {
	tr := traceHex(1)
	inv := inviteTxn(tr, spanHex(1), instA, 1, 0)
	spans := []Span{
		inv,
		ackTxn(tr, spanHex(2), instA, 1, 6000, 6020),
		txnSpan(txnOpts{trace: tr, span: spanHex(3), inst: instA, method: "BYE", cseq: 2, fromTag: "a"},
			in("BYE", 0, 9000, uac), out("BYE", 0, 1, 9050, uas),
			in("BYE", 200, 9500, uas), out("BYE", 200, 3, 9520, uac)),
		queueSpan(tr, spanHex(4), inv.SpanID, instA, 2500),
	}
	r := Analyze(spans)
	if r.ViolationCount != 0 || len(r.Violations) != 0 {
		t.Fatalf("violations: %+v", r.Violations)
	}
	if r.Calls != 1 || r.Transactions != 3 || r.Messages != 7+2+4 || r.KernelMessages != 13 || r.KernelSharePct != 100 {
		t.Errorf("counts: %+v", r)
	}
	// Forwards: INVITE 40, 180 30, 200 30, ACK 20, BYE 50, 200 20 (µs).
	want := Stats{Count: 6, Min: 20_000, P50: 30_000, P99: 50_000, Max: 50_000}
	if r.ProxyLatency != want {
		t.Errorf("latency %+v, want %+v", r.ProxyLatency, want)
	}
	if r.QueueWait != (Stats{Count: 1, Min: 2500, P50: 2500, P99: 2500, Max: 2500}) {
		t.Errorf("queue wait %+v", r.QueueWait)
	}
	if !reflect.DeepEqual(r.Instances, []Instance{instA}) {
		t.Errorf("instances %v", r.Instances)
	}
	for _, k := range order.Kinds {
		if n, ok := r.ViolationsByKind[k]; !ok || n != 0 {
			t.Errorf("by kind %v", r.ViolationsByKind)
		}
	}
	c := r.Call(tr)
	if c == nil || c.CallID != "call-0000" || len(c.Messages) != 13 {
		t.Fatalf("call %+v", c)
	}
	if c.Messages[0].Label() != "INVITE" || c.Messages[len(c.Messages)-1].Label() != "200" || c.Messages[len(c.Messages)-1].Method != "BYE" {
		t.Errorf("messages not in time order: %+v", c.Messages)
	}
}

func TestResponseViolations(t *testing.T) {
	tr := traceHex(2)
	spans := []Span{
		// 183 arrives before 180 but leaves after it.
		txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
			in("INVITE", 0, 0, uac), out("INVITE", 0, 1, 10, uas),
			in("INVITE", 183, 100, uas), in("INVITE", 180, 120, uas),
			out("INVITE", 180, 4, 130, uac), out("INVITE", 183, 3, 140, uac),
			in("INVITE", 200, 500, uas), out("INVITE", 200, 7, 510, uac),
		),
	}
	r := Analyze(spans)
	if got := kinds(r.Violations); !reflect.DeepEqual(got, []string{order.ResponseReorder}) {
		t.Fatalf("violations %v", r.Violations)
	}
	v := r.Violations[0]
	if v.First.Label != "183" || v.Second.Label != "180" || v.TraceID != tr || v.CallID != "call-0000" || v.Instance != instA {
		t.Errorf("violation %+v", v)
	}
	if v.First.InIndex != 2 || v.First.OutIndex != 5 {
		t.Errorf("refs %+v", v.First)
	}

	// A 180 that left after the 200, though it arrived first.
	tr = traceHex(3)
	r = Analyze([]Span{
		txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
			in("INVITE", 0, 0, uac), out("INVITE", 0, 1, 10, uas),
			in("INVITE", 180, 100, uas), in("INVITE", 200, 120, uas),
			out("INVITE", 200, 4, 130, uac), out("INVITE", 180, 3, 140, uac),
		),
	})
	if got := kinds(r.Violations); !reflect.DeepEqual(got, []string{order.ProvisionalAfterFinal}) {
		t.Fatalf("violations %v", r.Violations)
	}
	if r.ViolationsByKind[order.ProvisionalAfterFinal] != 1 || r.ViolationCount != 1 {
		t.Errorf("by kind %v", r.ViolationsByKind)
	}
}

// reinviteOvertakesACK: the ACK arrives before the re-INVITE of the same
// side but is forwarded after it.
func reinviteOvertakesACK(tr string, inst Instance) []Span {
	return []Span{
		inviteTxn(tr, spanHex(1), inst, 1, 0),
		ackTxn(tr, spanHex(2), inst, 1, 6000, 6500),
		txnSpan(txnOpts{trace: tr, span: spanHex(3), inst: inst, method: "INVITE", cseq: 2, fromTag: "a"},
			in("INVITE", 0, 6100, uac), out("INVITE", 0, 1, 6200, uas),
			in("INVITE", 200, 7000, uas), out("INVITE", 200, 3, 7010, uac)),
	}
}

func TestRequestReorder(t *testing.T) {
	tr := traceHex(4)
	r := Analyze(reinviteOvertakesACK(tr, instA))
	if got := kinds(r.Violations); !reflect.DeepEqual(got, []string{order.RequestReorder}) {
		t.Fatalf("violations %v", r.Violations)
	}
	v := r.Violations[0]
	if v.First.Label != "ACK" || v.Second.Label != "INVITE" || v.Second.CSeq != 2 {
		t.Errorf("violation %+v", v)
	}

	// The same timing from the other side of the dialog is not a
	// violation: each side has its own order.
	spans := reinviteOvertakesACK(tr, instA)
	spans[2].Attrs["sip.from.tag"] = "b"
	if r := Analyze(spans); len(r.Violations) != 0 {
		t.Errorf("other side: %v", r.Violations)
	}
}

// TestSplitAndShuffled: the spans of one call arrive in any order, in two
// fetches that overlap; the result is the same as from one clean fetch.
func TestSplitAndShuffled(t *testing.T) {
	var all []Span
	for i := range 4 {
		all = append(all, reinviteOvertakesACK(traceHex(10+i), instA)...)
		all = append(all, queueSpan(traceHex(10+i), spanHex(9), spanHex(1), instA, int64(1000*(i+1))))
	}
	want := Analyze(all)
	if want.ViolationCount != 4 || want.Transactions != 12 || want.QueueWait.Count != 4 {
		t.Fatalf("baseline %+v", want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		shuffled := slices.Clone(all)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		cut := rng.IntN(len(shuffled))
		// Fetch 1 has a prefix, fetch 2 the rest plus a few repeats; a
		// repeated span may come back with fewer events (exported before
		// the others): the fuller copy must win.
		fetch1 := shuffled[:cut]
		fetch2 := slices.Clone(shuffled[cut:])
		for i := range min(3, len(fetch1)) {
			partial := fetch1[i]
			partial.Events = partial.Events[:len(partial.Events)/2]
			fetch2 = append(fetch2, partial)
		}
		got := Analyze(append(slices.Clone(fetch2), fetch1...))
		got.Traces, want.Traces = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: got %+v\nwant %+v", round, got, want)
		}
	}
}

// TestTwoInstances: instance B's monotonic clock is far ahead of A's, so
// comparing across instances would see the re-INVITE (on A) leave long
// before the ACK (on B). They must not be compared.
func TestTwoInstances(t *testing.T) {
	tr := traceHex(20)
	spans := []Span{
		inviteTxn(tr, spanHex(1), instA, 1, 0),
		ackTxn(tr, spanHex(2), instB, 1, 6000, 6020),
		txnSpan(txnOpts{trace: tr, span: spanHex(3), inst: instA, method: "INVITE", cseq: 2, fromTag: "a"},
			in("INVITE", 0, 7000, uac), out("INVITE", 0, 1, 7010, uas)),
	}
	r := Analyze(spans)
	if len(r.Violations) != 0 {
		t.Fatalf("cross-instance comparison: %v", r.Violations)
	}
	if !reflect.DeepEqual(r.Instances, []Instance{instA, instB}) {
		t.Errorf("instances %v", r.Instances)
	}
	// The same reorder within instance B is found.
	spans = reinviteOvertakesACK(tr, instB)
	spans = append(spans, inviteTxn(tr, spanHex(7), instA, 1, 0))
	if got := kinds(Analyze(spans).Violations); !reflect.DeepEqual(got, []string{order.RequestReorder}) {
		t.Fatalf("within B: %v", got)
	}
}

func TestRetransmissionsExcluded(t *testing.T) {
	tr := traceHex(30)
	retrans180 := out("INVITE", 180, 4, 600, uac)
	retrans180.rtx = true
	retransInvite := out("INVITE", 0, 1, 550, uas)
	retransInvite.rtx = true
	absorbed := in("INVITE", 0, 520, uac)
	absorbed.rtx = true
	spans := []Span{
		txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
			in("INVITE", 0, 0, uac), out("INVITE", 0, 1, 10, uas),
			in("INVITE", 180, 100, uas), out("INVITE", 180, 3, 110, uac),
			in("INVITE", 200, 500, uas), out("INVITE", 200, 5, 510, uac),
			absorbed, retransInvite, retrans180,
		),
	}
	r := Analyze(spans)
	if len(r.Violations) != 0 {
		t.Fatalf("retransmission checked: %v", r.Violations)
	}
	if r.Messages != 9 || r.ProxyLatency.Count != 3 {
		t.Errorf("messages %d, forwards %d", r.Messages, r.ProxyLatency.Count)
	}
}

func TestKernelUserMix(t *testing.T) {
	tr := traceHex(40)
	userIn := in("INVITE", 0, 0, uac)
	userIn.user = true
	user180 := out("INVITE", 180, 3, 130, uac)
	user180.user = true
	spans := []Span{
		txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
			userIn, out("INVITE", 0, 1, 10, uas),
			in("INVITE", 180, 100, uas), user180,
			in("INVITE", 200, 500, uas), out("INVITE", 200, 5, 600, uac),
		),
	}
	r := Analyze(spans)
	if r.Messages != 6 || r.KernelMessages != 4 {
		t.Fatalf("kernel %d of %d", r.KernelMessages, r.Messages)
	}
	if got := r.KernelSharePct; got < 66.66 || got > 66.67 {
		t.Errorf("share %v", got)
	}
	// Only the 200 has both ends kernel-stamped.
	if r.ProxyLatency != (Stats{Count: 1, Min: 100_000, P50: 100_000, P99: 100_000, Max: 100_000}) {
		t.Errorf("latency %+v", r.ProxyLatency)
	}
	// Ordering still uses every forward, user-stamped ones included.
	spans[0] = txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
		userIn, out("INVITE", 0, 1, 10, uas),
		in("INVITE", 180, 100, uas), in("INVITE", 200, 120, uas),
		out("INVITE", 200, 4, 130, uac), user180Later(),
	)
	if got := kinds(Analyze(spans).Violations); !reflect.DeepEqual(got, []string{order.ProvisionalAfterFinal}) {
		t.Errorf("user-stamped forward not checked: %v", got)
	}
}

func user180Later() msg {
	m := out("INVITE", 180, 3, 140, uac)
	m.user = true
	return m
}

// TestRedactedCallIDs: with the Call-ID dropped, two calls still group by
// trace ID; their requests must not be compared with each other.
func TestRedactedCallIDs(t *testing.T) {
	var spans []Span
	for i, tr := range []string{traceHex(50), traceHex(51)} {
		base := int64(i) * 100 // the second call's ACK left before the first's INVITE
		spans = append(spans, txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a", noCallID: true},
			in("INVITE", 0, base, uac), out("INVITE", 0, 1, 1000-base, uas)))
	}
	r := Analyze(spans)
	if r.Calls != 2 || len(r.Violations) != 0 {
		t.Fatalf("calls %d, violations %v", r.Calls, r.Violations)
	}
	if r.Traces[0].CallID != "" {
		t.Errorf("call ID %q", r.Traces[0].CallID)
	}
	// Hashed Call-IDs group and report like plain ones.
	spans = reinviteOvertakesACK(traceHex(52), instA)
	for i := range spans {
		spans[i].Attrs["sip.call_id"] = "sha256:0123456789abcdef"
	}
	r = Analyze(spans)
	if len(r.Violations) != 1 || r.Violations[0].CallID != "sha256:0123456789abcdef" {
		t.Errorf("hashed: %+v", r.Violations)
	}
	if !strings.Contains(Ladder(r.Traces[0]), "Call-ID sha256:0123456789abcdef") {
		t.Errorf("ladder header")
	}
}

func TestProxyVerdictsIgnored(t *testing.T) {
	tr := traceHex(60)
	s := inviteTxn(tr, spanHex(1), instA, 1, 0)
	s.Events = append(s.Events, Event{Name: "sip.order_violation", Attrs: Attrs{"sipvigil.violation.kind": "response_reorder"}})
	s.StatusCode = 2
	r := Analyze([]Span{s})
	if r.ViolationCount != 0 || r.ProxyReported != 1 {
		t.Errorf("violations %d, proxy reported %d", r.ViolationCount, r.ProxyReported)
	}
}

func TestUnpairedForwards(t *testing.T) {
	tr := traceHex(70)
	noMono := out("INVITE", 180, 3, 130, uac)
	noMono.noMono = true
	s := txnSpan(txnOpts{trace: tr, span: spanHex(1), inst: instA, method: "INVITE", cseq: 1, fromTag: "a"},
		in("INVITE", 0, 0, uac), out("INVITE", 0, 1, 10, uas),
		in("INVITE", 180, 100, uas), noMono,
		out("INVITE", 200, 9, 600, uac), // relays a message the span lost
	)
	s.DroppedEvents = 1
	r := Analyze([]Span{s})
	if r.UnpairedForwards != 2 || r.IncompleteSpans != 1 || r.ProxyLatency.Count != 1 {
		t.Errorf("unpaired %d, incomplete %d, forwards %d", r.UnpairedForwards, r.IncompleteSpans, r.ProxyLatency.Count)
	}
	// The message without a monotonic time is still placed in the ladder
	// (by its wall time), between its neighbours.
	c := r.Traces[0]
	var labels []string
	for _, m := range c.Messages {
		labels = append(labels, m.Label())
	}
	if want := []string{"INVITE", "INVITE", "180", "180", "200"}; !reflect.DeepEqual(labels, want) {
		t.Errorf("ladder order %v", labels)
	}
}

func TestIncompleteSpans(t *testing.T) {
	s := inviteTxn(traceHex(71), spanHex(1), instA, 1, 0)
	s.Attrs["sipvigil.msgs.total"] = int64(len(s.Events))
	if r := Analyze([]Span{s}); r.IncompleteSpans != 0 {
		t.Errorf("complete span counted: %d", r.IncompleteSpans)
	}
	s.Attrs["sipvigil.msgs.total"] = int64(len(s.Events) + 2)
	if r := Analyze([]Span{s}); r.IncompleteSpans != 1 {
		t.Errorf("incomplete span not counted")
	}
}

func TestNearestRank(t *testing.T) {
	for _, tc := range []struct {
		values        []int64
		min, p50, p99 int64
		max           int64
	}{
		{[]int64{7}, 7, 7, 7, 7},
		{[]int64{3, 1, 2}, 1, 2, 3, 3},
		{[]int64{4, 1, 3, 2}, 1, 2, 4, 4},
		{seq(100), 1, 50, 99, 100},
		{seq(1000), 1, 500, 990, 1000},
		{seq(101), 1, 51, 100, 101},
	} {
		s := newStats(slices.Clone(tc.values))
		want := Stats{Count: len(tc.values), Min: tc.min, P50: tc.p50, P99: tc.p99, Max: tc.max}
		if s != want {
			t.Errorf("%d values: %+v, want %+v", len(tc.values), s, want)
		}
	}
	if newStats(nil) != (Stats{}) {
		t.Error("empty")
	}
}

func seq(n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[n-1-i] = int64(i + 1)
	}
	return v
}

func TestCallTraceID(t *testing.T) {
	// Known answer, computed independently:
	// sha256(b"sipvigil/call-id\x00abc@host").hexdigest()[:32]
	if got, want := CallTraceID("abc@host"), "c6eca43d86b824161f985f092270e3fa"; got != want {
		t.Errorf("CallTraceID = %s, want %s", got, want)
	}
}
