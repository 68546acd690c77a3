package metrics_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/metrics"
)

// callRecord is an initial INVITE answered 200, as a worker records it:
// caller on UDP, callee on TCP. User-space times (Mono) and kernel times
// (the stamps, when kernel is set), in ns:
//
//	#  msg                  user           kernel
//	0  in  INVITE   udp     1_000_050_000  1_000_000_000
//	1  out 100      udp     1_000_080_000  1_000_100_000  generated
//	2  out INVITE   tcp     1_000_200_000  1_000_250_000  relays #0: +150 µs
//	3  in  180      tcp     3_499_950_000  3_499_940_000
//	4  out 180      udp     3_499_990_000  3_500_000_000  relays #3: +40 µs; PDD 2.5 s kernel
//	5  in  200      tcp     8_999_970_000  8_999_960_000
//	6  out 200      udp     8_999_990_000  9_000_000_000  relays #5: +20 µs; answer 8 s kernel
//	7  in  INVITE   udp     1_500_000_000  -              retransmission, absorbed
//	8  out 200      udp     9_500_000_000  -              retransmission, timer
func callRecord(callID string, kernel bool) *observe.Txn {
	st := func(mono int64) *observe.Stamp {
		if !kernel {
			return nil
		}
		return stamped(mono)
	}
	udp, tcp := observe.ProtoUDP, observe.ProtoTCP
	return &observe.Txn{CallID: callID, FromTag: "a", Method: "INVITE", CSeq: 1, Kind: observe.TxnServer, Final: 200, Initial: true,
		Msgs: []observe.Msg{
			{ID: 1, Dir: observe.In, Method: "INVITE", Proto: udp, Mono: 1_000_050_000, Stamp: st(1_000_000_000)},
			{ID: 101, Dir: observe.Out, Method: "INVITE", Status: 100, Proto: udp, Mono: 1_000_080_000, Stamp: st(1_000_100_000)},
			{ID: 102, Dir: observe.Out, Method: "INVITE", Proto: tcp, Mono: 1_000_200_000, Stamp: st(1_000_250_000), Relays: 1},
			{ID: 2, Dir: observe.In, Method: "INVITE", Status: 180, Proto: tcp, Mono: 3_499_950_000, Stamp: st(3_499_940_000)},
			{ID: 103, Dir: observe.Out, Method: "INVITE", Status: 180, Proto: udp, Mono: 3_499_990_000, Stamp: st(3_500_000_000), Relays: 4},
			{ID: 3, Dir: observe.In, Method: "INVITE", Status: 200, Proto: tcp, Mono: 8_999_970_000, Stamp: st(8_999_960_000)},
			{ID: 104, Dir: observe.Out, Method: "INVITE", Status: 200, Proto: udp, Mono: 8_999_990_000, Stamp: st(9_000_000_000), Relays: 6},
			{ID: 4, Dir: observe.In, Method: "INVITE", Proto: udp, Mono: 1_500_000_000, Retransmission: true},
			{ID: 105, Dir: observe.Out, Method: "INVITE", Status: 200, Proto: udp, Mono: 9_500_000_000, Retransmission: true},
		}}
}

// byeRecord ends callID's dialog.
func byeRecord(callID string) *observe.Txn {
	return &observe.Txn{CallID: callID, FromTag: "a", Method: "BYE", CSeq: 2, Kind: observe.TxnServer, Final: 200,
		Msgs: []observe.Msg{
			{ID: 5, Dir: observe.In, Method: "BYE", Proto: observe.ProtoUDP, Mono: 20_000_000_000},
			{ID: 106, Dir: observe.Out, Method: "BYE", Proto: observe.ProtoTCP, Mono: 20_000_010_000, Relays: 1},
			{ID: 6, Dir: observe.In, Method: "BYE", Status: 200, Proto: observe.ProtoTCP, Mono: 20_001_000_000},
			{ID: 107, Dir: observe.Out, Method: "BYE", Status: 200, Proto: observe.ProtoUDP, Mono: 20_001_005_000, Relays: 3},
		}}
}

// series returns every series of a family as "k=v,k=v" -> value, and how
// many there are in all; zero-valued ones are left out of the map (the
// message counters pre-create hundreds of them).
func series(t *testing.T, g prometheus.Gatherer, name string) (map[string]float64, int) {
	t.Helper()
	mf := family(t, g, name)
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName()+"="+lp.GetValue())
		}
		if v := m.GetCounter().GetValue(); v != 0 {
			out[strings.Join(ls, ",")] = v
		}
	}
	return out, len(mf.GetMetric())
}

func wantSeries(t *testing.T, g prometheus.Gatherer, name string, want map[string]float64) {
	t.Helper()
	got, _ := series(t, g, name)
	if !maps.Equal(got, want) {
		t.Errorf("%s non-zero series:\n got  %v\n want %v", name, got, want)
	}
}

func plainHistogram(t *testing.T, g prometheus.Gatherer, name string) *dto.Histogram {
	t.Helper()
	return family(t, g, name).GetMetric()[0].GetHistogram()
}

func TestTrafficMessages(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr := metrics.NewTraffic(reg)
	tr.Export(resolve(callRecord("call-1", true)))

	wantSeries(t, reg, "sipvigil_requests_total", map[string]float64{
		"direction=in,method=INVITE,transport=udp":  1,
		"direction=out,method=INVITE,transport=tcp": 1,
	})
	wantSeries(t, reg, "sipvigil_responses_total", map[string]float64{
		"direction=out,method=INVITE,status_class=1xx,transport=udp": 2, // 100 and 180
		"direction=in,method=INVITE,status_class=1xx,transport=tcp":  1,
		"direction=in,method=INVITE,status_class=2xx,transport=tcp":  1,
		"direction=out,method=INVITE,status_class=2xx,transport=udp": 1,
	})
	wantSeries(t, reg, "sipvigil_retransmissions_total", map[string]float64{
		"direction=in,method=INVITE":  1,
		"direction=out,method=INVITE": 1,
	})

	// Processing is user space to user space, whatever the stamps say.
	req := byKind(t, family(t, reg, "sipvigil_processing_latency_seconds"), "request").GetHistogram()
	if req.GetSampleCount() != 1 || !near(req.GetSampleSum(), 150e-6) {
		t.Errorf("processing request: count %d sum %v, want 1 and 150µs", req.GetSampleCount(), req.GetSampleSum())
	}
	resp := byKind(t, family(t, reg, "sipvigil_processing_latency_seconds"), "response").GetHistogram()
	if resp.GetSampleCount() != 2 || !near(resp.GetSampleSum(), 60e-6) {
		t.Errorf("processing response: count %d sum %v, want 2 (180, 200; not the 100 or the retransmission) and 60µs", resp.GetSampleCount(), resp.GetSampleSum())
	}

	// PDD 2.5 s and answer 8 s, kernel to kernel.
	compare(t, reg, `
		# TYPE sipvigil_post_dial_delay_seconds histogram
		sipvigil_post_dial_delay_seconds_bucket{le="0.05"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="0.1"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="0.25"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="0.5"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="1"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="1.5"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="2"} 0
		sipvigil_post_dial_delay_seconds_bucket{le="3"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="4"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="5"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="6"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="8"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="10"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="15"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="20"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="30"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="60"} 1
		sipvigil_post_dial_delay_seconds_bucket{le="+Inf"} 1
		sipvigil_post_dial_delay_seconds_sum 2.5
		sipvigil_post_dial_delay_seconds_count 1
		# TYPE sipvigil_invite_answer_seconds histogram
		sipvigil_invite_answer_seconds_bucket{le="0.1"} 0
		sipvigil_invite_answer_seconds_bucket{le="0.5"} 0
		sipvigil_invite_answer_seconds_bucket{le="1"} 0
		sipvigil_invite_answer_seconds_bucket{le="2"} 0
		sipvigil_invite_answer_seconds_bucket{le="3"} 0
		sipvigil_invite_answer_seconds_bucket{le="5"} 0
		sipvigil_invite_answer_seconds_bucket{le="7.5"} 0
		sipvigil_invite_answer_seconds_bucket{le="10"} 1
		sipvigil_invite_answer_seconds_bucket{le="15"} 1
		sipvigil_invite_answer_seconds_bucket{le="20"} 1
		sipvigil_invite_answer_seconds_bucket{le="30"} 1
		sipvigil_invite_answer_seconds_bucket{le="45"} 1
		sipvigil_invite_answer_seconds_bucket{le="60"} 1
		sipvigil_invite_answer_seconds_bucket{le="90"} 1
		sipvigil_invite_answer_seconds_bucket{le="120"} 1
		sipvigil_invite_answer_seconds_bucket{le="180"} 1
		sipvigil_invite_answer_seconds_bucket{le="300"} 1
		sipvigil_invite_answer_seconds_bucket{le="+Inf"} 1
		sipvigil_invite_answer_seconds_sum 8
		sipvigil_invite_answer_seconds_count 1
	`, "sipvigil_post_dial_delay_seconds", "sipvigil_invite_answer_seconds")
}

// TestTrafficTimestampSources: each message uses its best time, kernel
// when matched, else user space; PDD and answer time mix them freely.
func TestTrafficTimestampSources(t *testing.T) {
	cases := []struct {
		name            string
		kernel          bool
		mutate          func(*observe.Txn)
		pdd, answerSecs float64
	}{
		{"kernel", true, nil, 2.5, 8},
		{"user fallback", false, nil, 3_499_990_000e-9 - 1_000_050_000e-9, 8_999_990_000e-9 - 1_000_050_000e-9},
		{"INVITE kernel, responses user", true, func(r *observe.Txn) { r.Msgs[4].Stamp, r.Msgs[6].Stamp = nil, nil },
			3_499_990_000e-9 - 1, 8_999_990_000e-9 - 1},
		{"INVITE user, 180 kernel", true, func(r *observe.Txn) { r.Msgs[0].Stamp = &observe.Stamp{} }, // never Set
			3.5 - 1_000_050_000e-9, 9 - 1_000_050_000e-9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			tr := metrics.NewTraffic(reg)
			rec := callRecord("call-1", c.kernel)
			if c.mutate != nil {
				c.mutate(rec)
			}
			tr.Export(resolve(rec))
			for _, h := range []struct {
				name string
				want float64
			}{{"sipvigil_post_dial_delay_seconds", c.pdd}, {"sipvigil_invite_answer_seconds", c.answerSecs}} {
				got := plainHistogram(t, reg, h.name)
				if got.GetSampleCount() != 1 || !near(got.GetSampleSum(), h.want) {
					t.Errorf("%s: count %d sum %.9f, want 1 and %.9f", h.name, got.GetSampleCount(), got.GetSampleSum(), h.want)
				}
			}
		})
	}
}

// TestTrafficInitialOnly: PDD and answer time are about calls, so an INVITE
// inside an established dialog (a re-INVITE) is counted as a message but
// not as a call; a BYE ends the dialog; an INVITE retried after a 407 is
// still initial, and a cancelled call has a PDD but no answer time.
func TestTrafficInitialOnly(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr := metrics.NewTraffic(reg)
	counts := func() (pdd, answer uint64) {
		return plainHistogram(t, reg, "sipvigil_post_dial_delay_seconds").GetSampleCount(),
			plainHistogram(t, reg, "sipvigil_invite_answer_seconds").GetSampleCount()
	}
	step := func(what string, rec *observe.Txn, wantPDD, wantAnswer uint64) {
		t.Helper()
		tr.Export(resolve(rec))
		if p, a := counts(); p != wantPDD || a != wantAnswer {
			t.Errorf("after %s: pdd count %d answer count %d, want %d and %d", what, p, a, wantPDD, wantAnswer)
		}
	}
	step("initial INVITE", callRecord("call-1", true), 1, 1)
	reinvite := callRecord("call-1", true)
	reinvite.CSeq, reinvite.Initial = 3, false // the worker saw a To tag
	step("re-INVITE", reinvite, 1, 1)
	step("another call", callRecord("call-2", false), 2, 2)
	step("BYE", byeRecord("call-1"), 2, 2)
	step("INVITE after BYE (Call-ID reused)", callRecord("call-1", true), 3, 3)

	// 407, then the retried INVITE of the same Call-ID.
	challenged := callRecord("call-3", true)
	challenged.Final = 407
	challenged.Msgs = challenged.Msgs[:3]
	challenged.Msgs = append(challenged.Msgs,
		observe.Msg{ID: 7, Dir: observe.In, Method: "INVITE", Status: 407, Proto: observe.ProtoTCP, Mono: 1_100_000_000},
		observe.Msg{ID: 108, Dir: observe.Out, Method: "INVITE", Status: 407, Proto: observe.ProtoUDP, Mono: 1_100_010_000, Relays: 4})
	step("407", challenged, 3, 3)
	step("INVITE retried after 407", callRecord("call-3", true), 4, 4)

	// Ringing, then CANCELled: 487.
	cancelled := callRecord("call-4", true)
	cancelled.Final = 487
	cancelled.Msgs[5].Status, cancelled.Msgs[6].Status, cancelled.Msgs[8].Status = 487, 487, 487
	step("cancelled call", cancelled, 5, 4)
	step("INVITE after a failed one", callRecord("call-4", true), 6, 5)

	wantSeries(t, reg, "sipvigil_requests_total", map[string]float64{
		"direction=in,method=INVITE,transport=udp":  8,
		"direction=out,method=INVITE,transport=tcp": 8,
		"direction=in,method=BYE,transport=udp":     1,
		"direction=out,method=BYE,transport=tcp":    1,
	})
}

// TestTrafficFailedSend: an outbound message without a packet ID never
// reached a socket; it is neither a message out nor a 18x for the PDD.
func TestTrafficFailedSend(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr := metrics.NewTraffic(reg)
	rec := callRecord("call-1", true)
	rec.Msgs[4].ID = 0 // the 180 upstream failed
	tr.Export(resolve(rec))
	wantSeries(t, reg, "sipvigil_responses_total", map[string]float64{
		"direction=out,method=INVITE,status_class=1xx,transport=udp": 1, // the 100 only
		"direction=in,method=INVITE,status_class=1xx,transport=tcp":  1,
		"direction=in,method=INVITE,status_class=2xx,transport=tcp":  1,
		"direction=out,method=INVITE,status_class=2xx,transport=udp": 1,
	})
	if n := plainHistogram(t, reg, "sipvigil_post_dial_delay_seconds").GetSampleCount(); n != 0 {
		t.Errorf("pdd count %d, want 0: no 18x went out", n)
	}
	if n := plainHistogram(t, reg, "sipvigil_invite_answer_seconds").GetSampleCount(); n != 1 {
		t.Errorf("answer count %d, want 1", n)
	}
}

// TestTrafficBoundedLabels: methods outside the known set are "other",
// and every series exists from the start.
func TestTrafficBoundedLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr := metrics.NewTraffic(reg)
	for name, n := range map[string]int{"sipvigil_requests_total": 2 * 2 * 15, "sipvigil_responses_total": 2 * 2 * 15 * 6, "sipvigil_retransmissions_total": 2 * 15} {
		if _, got := series(t, reg, name); got != n {
			t.Errorf("%s has %d series before any traffic, want %d", name, got, n)
		}
	}
	rec := &observe.Txn{CallID: "x", Method: "FOO", Kind: observe.TxnServer, Final: 501, Msgs: []observe.Msg{
		{ID: 1, Dir: observe.In, Method: "FOO", Proto: observe.ProtoUDP, Mono: 1},
		{ID: 101, Dir: observe.Out, Method: "FOO", Status: 501, Proto: observe.ProtoUDP, Mono: 2},
		{ID: 2, Dir: observe.In, Method: "invite", Proto: observe.ProtoUDP, Mono: 3}, // methods are case-sensitive
		{ID: 3, Dir: observe.In, Method: "PRACK", Proto: observe.ProtoTCP, Mono: 4},
		{ID: 102, Dir: observe.Out, Method: "FOO", Status: 999, Proto: observe.ProtoUDP, Mono: 5}, // no such class
	}}
	tr.Export(resolve(rec))
	tr.Export(nil)
	tr.Export(&evidence.Txn{})
	wantSeries(t, reg, "sipvigil_requests_total", map[string]float64{
		"direction=in,method=other,transport=udp": 2,
		"direction=in,method=PRACK,transport=tcp": 1,
	})
	wantSeries(t, reg, "sipvigil_responses_total", map[string]float64{
		"direction=out,method=other,status_class=5xx,transport=udp": 1,
	})
}

// TestTrafficAllocs: Export runs on the tracker goroutine for every
// transaction; in steady state it must not allocate.
func TestTrafficAllocs(t *testing.T) {
	tr := metrics.NewTraffic(prometheus.NewRegistry())
	invite := resolve(callRecord("call-1", true))
	bye := resolve(byeRecord("call-1"))
	reinvite := resolve(callRecord("call-1", false))
	other := resolve(&observe.Txn{CallID: "x", Method: "OPTIONS", Kind: observe.TxnServer, Final: 200, Msgs: []observe.Msg{
		{ID: 1, Dir: observe.In, Method: "OPTIONS", Proto: observe.ProtoTCP, Mono: 1},
		{ID: 101, Dir: observe.Out, Method: "OPTIONS", Status: 200, Proto: observe.ProtoTCP, Mono: 2},
	}})
	allocs := testing.AllocsPerRun(200, func() {
		tr.Export(invite)   // initial: counters, processing, PDD, answer, dialog added
		tr.Export(reinvite) // in dialog
		tr.Export(bye)      // dialog removed
		tr.Export(other)
	})
	if allocs != 0 {
		t.Errorf("Export allocates %v times per round, want 0", allocs)
	}
}

// TestEvidenceAllocs: the same for the ordering/latency sink without
// exemplars (with them, the trace ID label is built per sampled call).
func TestEvidenceAllocs(t *testing.T) {
	e := metrics.NewEvidence(prometheus.NewRegistry(), nil)
	rec := resolve(kernelInvite("call-1"))
	if allocs := testing.AllocsPerRun(200, func() { e.Export(rec) }); allocs != 0 {
		t.Errorf("Evidence.Export allocates %v times, want 0", allocs)
	}
}

// TestTrafficMethodLabels: the method label values, as docs/metrics.md
// lists them.
func TestTrafficMethodLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.NewTraffic(reg)
	var methods []string
	for _, m := range family(t, reg, "sipvigil_retransmissions_total").GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "method" && !slices.Contains(methods, lp.GetValue()) {
				methods = append(methods, lp.GetValue())
			}
		}
	}
	slices.Sort(methods)
	want := []string{"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE", "other"}
	if !slices.Equal(methods, want) {
		t.Errorf("method labels %v, want %v", methods, want)
	}
}
