package metrics_test

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"sipvigil/bpf"
	"sipvigil/proxy/config"
	"sipvigil/proxy/dispatch"
	"sipvigil/proxy/lookup"
	"sipvigil/proxy/observe"
	"sipvigil/proxy/route"
	"sipvigil/proxy/suspend"
	"sipvigil/proxy/transport"
	"sipvigil/proxy/worker"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/kernel"
	"sipvigil/telemetry/metrics"
	"sipvigil/telemetry/tracing"
)

// Fakes: the collectors only see these interfaces, so every value below is
// exactly what a scrape must show.

type fakeWorker worker.Snapshot

func (f fakeWorker) Snapshot() worker.Snapshot { return worker.Snapshot(f) }

type fakeDispatcher dispatch.CountersSnapshot

func (f fakeDispatcher) Snapshot() dispatch.CountersSnapshot { return dispatch.CountersSnapshot(f) }

type fakeTransport transport.Counters

func (f fakeTransport) Counters() transport.Counters { return transport.Counters(f) }

type fakeKernel struct {
	c     bpf.Counters
	err   error
	ms    kernel.MatcherStats
	steps uint64
}

func (f *fakeKernel) Counters() (bpf.Counters, error)   { return f.c, f.err }
func (f *fakeKernel) MatcherStats() kernel.MatcherStats { return f.ms }
func (f *fakeKernel) ClockSteps() uint64                { return f.steps }

type fakeTraces tracing.Stats

func (f fakeTraces) Stats() tracing.Stats { return tracing.Stats(f) }

type fakeLookup struct {
	name string
	s    lookup.Stats
}

func (f fakeLookup) Name() string        { return f.name }
func (f fakeLookup) Stats() lookup.Stats { return f.s }

// compare gathers names from g and compares them with want, which holds
// the # TYPE lines and the samples: the # HELP lines are filled in from
// what g reports (the prose is checked by the lint test, not here).
func compare(t *testing.T, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	help := map[string]string{}
	for _, mf := range mfs {
		help[mf.GetName()] = mf.GetHelp()
	}
	var b strings.Builder
	for line := range strings.Lines(want) {
		line = strings.TrimLeft(line, " \t")
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			b.WriteString("# HELP " + name + " " + help[name] + "\n")
		}
		b.WriteString(line)
	}
	if err := testutil.GatherAndCompare(g, strings.NewReader(b.String()), names...); err != nil {
		t.Error(err)
	}
}

// register runs metrics.Register on a pedantic registry, which also checks
// that every collected metric was described.
func register(t *testing.T, s metrics.Sources) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := metrics.Register(reg, s); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return reg
}

func TestWorkers(t *testing.T) {
	w0 := fakeWorker{ActiveServer: 3, ServerTxCreated: 100, DialogsEstablished: 40, Failovers: 2,
		BusyNanos: 1_500_000_000, InboxDepth: 7, InboxCapacity: 8192}
	w0.Finals[2], w0.Finals[4], w0.Finals[5] = 60, 30, 5
	w1 := fakeWorker{ActiveServer: 1, ServerTxCreated: 50, DialogsEstablished: 10, Failovers: 1,
		BusyNanos: 250_000_000, InboxDepth: 0, InboxCapacity: 8192}
	w1.Finals[2], w1.Finals[3], w1.Finals[6] = 40, 1, 2
	reg := register(t, metrics.Sources{Workers: []metrics.WorkerSource{w0, w1}})
	compare(t, reg, `
		# TYPE sipvigil_transactions_active gauge
		sipvigil_transactions_active 4
		# TYPE sipvigil_transactions_created_total counter
		sipvigil_transactions_created_total 150
		# TYPE sipvigil_transactions_final_total counter
		sipvigil_transactions_final_total{class="2xx"} 100
		sipvigil_transactions_final_total{class="3xx"} 1
		sipvigil_transactions_final_total{class="4xx"} 30
		sipvigil_transactions_final_total{class="5xx"} 5
		sipvigil_transactions_final_total{class="6xx"} 2
		# TYPE sipvigil_dialogs_established_total counter
		sipvigil_dialogs_established_total 50
		# TYPE sipvigil_failovers_total counter
		sipvigil_failovers_total 3
		# TYPE sipvigil_worker_inbox_depth gauge
		sipvigil_worker_inbox_depth{worker="0"} 7
		sipvigil_worker_inbox_depth{worker="1"} 0
		# TYPE sipvigil_worker_busy_seconds_total counter
		sipvigil_worker_busy_seconds_total{worker="0"} 1.5
		sipvigil_worker_busy_seconds_total{worker="1"} 0.25
		# TYPE sipvigil_suspended_transactions gauge
		sipvigil_suspended_transactions 0
	`, "sipvigil_transactions_active", "sipvigil_transactions_created_total", "sipvigil_transactions_final_total",
		"sipvigil_dialogs_established_total", "sipvigil_failovers_total", "sipvigil_worker_inbox_depth",
		"sipvigil_worker_busy_seconds_total", "sipvigil_suspended_transactions")
}

func TestWorkerSources(t *testing.T) {
	ws := metrics.WorkerSources([]fakeWorker{{InboxDepth: 1}, {InboxDepth: 2}})
	if len(ws) != 2 || ws[1].Snapshot().InboxDepth != 2 {
		t.Fatalf("WorkerSources = %v", ws)
	}
	var nilWorker *worker.Worker
	// A nil worker is skipped, not scraped (it would panic), and the
	// others keep their index as their label.
	reg := register(t, metrics.Sources{Workers: []metrics.WorkerSource{nilWorker, fakeWorker{InboxDepth: 5}}})
	compare(t, reg, `
		# TYPE sipvigil_worker_inbox_depth gauge
		sipvigil_worker_inbox_depth{worker="1"} 5
	`, "sipvigil_worker_inbox_depth")
}

func TestDispatcherAndTransport(t *testing.T) {
	tc := fakeTransport{
		UDP: transport.ProtoCounters{Bad: map[string]uint64{"parse": 4, "truncated": 1, "too_large": 0, "framing": 2}},
		TCP: transport.ProtoCounters{Bad: map[string]uint64{"parse": 0, "truncated": 3, "too_large": 5, "framing": 6}},
	}
	reg := register(t, metrics.Sources{
		Dispatcher: fakeDispatcher{OverloadRejected: 17, OverloadDropped: 99, BadByReason: map[string]uint64{"parse": 1000}},
		Transport:  tc,
	})
	compare(t, reg, `
		# TYPE sipvigil_overload_rejected_total counter
		sipvigil_overload_rejected_total 17
		# TYPE sipvigil_parse_errors_total counter
		sipvigil_parse_errors_total{reason="framing",transport="tcp"} 6
		sipvigil_parse_errors_total{reason="framing",transport="udp"} 2
		sipvigil_parse_errors_total{reason="parse",transport="tcp"} 0
		sipvigil_parse_errors_total{reason="parse",transport="udp"} 4
		sipvigil_parse_errors_total{reason="too_large",transport="tcp"} 5
		sipvigil_parse_errors_total{reason="too_large",transport="udp"} 0
		sipvigil_parse_errors_total{reason="truncated",transport="tcp"} 3
		sipvigil_parse_errors_total{reason="truncated",transport="udp"} 1
	`, "sipvigil_overload_rejected_total", "sipvigil_parse_errors_total")
}

// queueFixture is a real suspend queue driven through every counter:
// tk1 and tk2 accepted, flushed (released) and resumed after 12 ms and
// 250 ms; tk3 refused (full); tk4 and tk5 accepted and still in the ring,
// tk4 then expired (max_wait) and tk5 cancelled. So depth 2, yet none of
// its transactions is still suspended (4 - 2 resumed - 1 - 1).
func queueFixture(t *testing.T) *suspend.Queue {
	t.Helper()
	q := suspend.New(suspend.Config{Name: "reinvite", Delay: 10 * time.Millisecond, Consumers: 1, Capacity: 2},
		func(suspend.Ticket) {})
	base := time.Unix(1767225600, 0)
	tk := func(i int) suspend.Ticket {
		return suspend.Ticket{ID: uint64(i), Enqueued: base, Due: base.Add(10 * time.Millisecond)}
	}
	if !q.Enqueue(tk(1)) || !q.Enqueue(tk(2)) {
		t.Fatal("setup: enqueue refused")
	}
	if q.Enqueue(tk(3)) {
		t.Fatal("setup: enqueue beyond capacity accepted")
	}
	if n := q.Flush(); n != 2 {
		t.Fatalf("setup: Flush = %d", n)
	}
	q.ObserveResume(tk(1), base.Add(12*time.Millisecond))
	q.ObserveResume(tk(2), base.Add(250*time.Millisecond))
	if !q.Enqueue(tk(4)) || !q.Enqueue(tk(5)) {
		t.Fatal("setup: enqueue refused")
	}
	q.CountExpired()
	q.CountCancelled()
	return q
}

func TestQueuesAndLookups(t *testing.T) {
	q := queueFixture(t)
	// Suspended: 0 on the queue (see queueFixture); lookups 3 in flight
	// + 2 queued on pbx, 1 in flight on crm.
	pbx := fakeLookup{"pbx", lookup.Stats{Requests: 20, OK: 10, Replies: 3, Timeouts: 2, Errors: 1, Overflows: 4, InFlight: 3, Queued: 2}}
	crm := fakeLookup{"crm", lookup.Stats{OK: 1, InFlight: 1}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewSuspendCollector([]*suspend.Queue{q}, []metrics.LookupSource{pbx, crm}))
	compare(t, reg, `
		# TYPE sipvigil_queue_depth gauge
		sipvigil_queue_depth{queue="reinvite"} 2
		# TYPE sipvigil_queue_capacity gauge
		sipvigil_queue_capacity{queue="reinvite"} 2
		# TYPE sipvigil_queue_enqueued_total counter
		sipvigil_queue_enqueued_total{queue="reinvite"} 4
		# TYPE sipvigil_queue_released_total counter
		sipvigil_queue_released_total{queue="reinvite"} 2
		# TYPE sipvigil_queue_overflow_total counter
		sipvigil_queue_overflow_total{queue="reinvite"} 1
		# TYPE sipvigil_queue_expired_total counter
		sipvigil_queue_expired_total{queue="reinvite"} 1
		# TYPE sipvigil_queue_cancelled_total counter
		sipvigil_queue_cancelled_total{queue="reinvite"} 1
		# TYPE sipvigil_queue_wait_seconds histogram
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.0001"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.00025"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.0005"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.001"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.0025"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.005"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.01"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.0105"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.011"} 0
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.0125"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.015"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.02"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.025"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.05"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.1"} 1
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.25"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="0.5"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="1"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="2.5"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="5"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="10"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="30"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="60"} 2
		sipvigil_queue_wait_seconds_bucket{queue="reinvite",le="+Inf"} 2
		sipvigil_queue_wait_seconds_sum{queue="reinvite"} 0.262
		sipvigil_queue_wait_seconds_count{queue="reinvite"} 2
		# TYPE sipvigil_lookup_requests_total counter
		sipvigil_lookup_requests_total{lookup="crm",outcome="error"} 0
		sipvigil_lookup_requests_total{lookup="crm",outcome="ok"} 1
		sipvigil_lookup_requests_total{lookup="crm",outcome="overflow"} 0
		sipvigil_lookup_requests_total{lookup="crm",outcome="reply"} 0
		sipvigil_lookup_requests_total{lookup="crm",outcome="timeout"} 0
		sipvigil_lookup_requests_total{lookup="pbx",outcome="error"} 1
		sipvigil_lookup_requests_total{lookup="pbx",outcome="ok"} 10
		sipvigil_lookup_requests_total{lookup="pbx",outcome="overflow"} 4
		sipvigil_lookup_requests_total{lookup="pbx",outcome="reply"} 3
		sipvigil_lookup_requests_total{lookup="pbx",outcome="timeout"} 2
		# TYPE sipvigil_suspended_transactions gauge
		sipvigil_suspended_transactions 6
	`)
}

// TestSuspendedFromQueue checks the queue side of the gauge on its own:
// entries that have not ended as resumed, expired or cancelled.
func TestSuspendedFromQueue(t *testing.T) {
	q := suspend.New(suspend.Config{Name: "q", Consumers: 1, Capacity: 10}, func(suspend.Ticket) {})
	now := time.Now()
	for i := range 5 {
		q.Enqueue(suspend.Ticket{ID: uint64(i), Enqueued: now})
	}
	q.ObserveResume(suspend.Ticket{Enqueued: now, Due: now}, now)
	q.CountExpired()
	reg := register(t, metrics.Sources{Queues: []*suspend.Queue{q, nil}})
	compare(t, reg, `
		# TYPE sipvigil_suspended_transactions gauge
		sipvigil_suspended_transactions 3
	`, "sipvigil_suspended_transactions")
}

const healthConfig = `
destinations:
  pbx:
    hops: ["127.0.0.1:5070", "127.0.0.1:5071;transport=tcp", "[::1]:5072"]
    probe: {enabled: true, failures_to_down: 2, successes_to_up: 1}
  emerg:
    hops: ["10.0.0.9"]
routes:
  - name: default
    to: pbx
  - name: emergency
    match: {user_prefix: "112"}
    to: emerg
`

func TestHealth(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(healthConfig))
	if err != nil {
		t.Fatal(err)
	}
	r := route.New(cfg)
	h := route.NewHealth(r)
	byKey := map[string]*route.Hop{}
	for _, hop := range r.Hops() {
		byKey[metrics.HopLabel(hop)] = hop
	}
	down := byKey["127.0.0.1:5071;transport=tcp"]
	probed := byKey["[::1]:5072;transport=udp"]
	if down == nil || probed == nil {
		t.Fatalf("hop labels: %v", slices.Sorted(maps.Keys(byKey)))
	}
	h.Report(down, false, 0)
	h.Report(down, false, 0)
	h.Report(probed, true, 1500*time.Microsecond)
	reg := register(t, metrics.Sources{Health: h})
	compare(t, reg, `
		# TYPE sipvigil_hop_up gauge
		sipvigil_hop_up{hop="10.0.0.9:5060;transport=udp",set="emerg"} 1
		sipvigil_hop_up{hop="127.0.0.1:5070;transport=udp",set="pbx"} 1
		sipvigil_hop_up{hop="127.0.0.1:5071;transport=tcp",set="pbx"} 0
		sipvigil_hop_up{hop="[::1]:5072;transport=udp",set="pbx"} 1
		# TYPE sipvigil_hop_probe_rtt_seconds gauge
		sipvigil_hop_probe_rtt_seconds{hop="[::1]:5072;transport=udp",set="pbx"} 0.0015
	`, "sipvigil_hop_up", "sipvigil_hop_probe_rtt_seconds")
}

func TestKernelOff(t *testing.T) {
	// Kernel(nil) is how cmd/ passes "eBPF off"; the collector must not
	// see a non-nil interface around a nil source.
	reg := register(t, metrics.Sources{Kernel: metrics.Kernel(nil)})
	compare(t, reg, `
		# TYPE sipvigil_ebpf_enabled gauge
		sipvigil_ebpf_enabled 0
	`, "sipvigil_ebpf_enabled", "sipvigil_ebpf_packets_total", "sipvigil_ebpf_ring_drops_total",
		"sipvigil_ebpf_matched_total", "sipvigil_ebpf_unmatched_total", "sipvigil_ebpf_clock_steps_total")
}

func TestKernelOn(t *testing.T) {
	k := &fakeKernel{
		c: bpf.Counters{Seen: 1000, Captured: 600, RingDrops: 3},
		ms: kernel.MatcherStats{Matched: 550, UnmatchedKernel: 20, EvictedKernel: 2,
			UnmatchedPacket: 7, EvictedPacket: 1, Evicted: 3, OtherSide: 500},
		steps: 1,
	}
	var logs bytes.Buffer
	reg := register(t, metrics.Sources{Kernel: k, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	names := []string{"sipvigil_ebpf_enabled", "sipvigil_ebpf_packets_total", "sipvigil_ebpf_ring_drops_total",
		"sipvigil_ebpf_matched_total", "sipvigil_ebpf_unmatched_total", "sipvigil_ebpf_clock_steps_total"}
	compare(t, reg, `
		# TYPE sipvigil_ebpf_enabled gauge
		sipvigil_ebpf_enabled 1
		# TYPE sipvigil_ebpf_packets_total counter
		sipvigil_ebpf_packets_total{stage="captured"} 600
		sipvigil_ebpf_packets_total{stage="seen"} 1000
		# TYPE sipvigil_ebpf_ring_drops_total counter
		sipvigil_ebpf_ring_drops_total 3
		# TYPE sipvigil_ebpf_matched_total counter
		sipvigil_ebpf_matched_total 550
		# TYPE sipvigil_ebpf_unmatched_total counter
		sipvigil_ebpf_unmatched_total{side="kernel"} 22
		sipvigil_ebpf_unmatched_total{side="packet"} 8
		# TYPE sipvigil_ebpf_clock_steps_total counter
		sipvigil_ebpf_clock_steps_total 1
	`, names...)

	// The BPF map read fails: those series drop out of the scrape, the
	// rest stay, and the failure is logged once, not per scrape.
	k.err = errors.New("map lookup: boom")
	want := `
		# TYPE sipvigil_ebpf_enabled gauge
		sipvigil_ebpf_enabled 1
		# TYPE sipvigil_ebpf_matched_total counter
		sipvigil_ebpf_matched_total 550
		# TYPE sipvigil_ebpf_unmatched_total counter
		sipvigil_ebpf_unmatched_total{side="kernel"} 22
		sipvigil_ebpf_unmatched_total{side="packet"} 8
		# TYPE sipvigil_ebpf_clock_steps_total counter
		sipvigil_ebpf_clock_steps_total 1
	`
	compare(t, reg, want, names...)
	compare(t, reg, want, names...)
	if n := strings.Count(logs.String(), "boom"); n != 1 {
		t.Errorf("failure logged %d times, want 1:\n%s", n, logs.String())
	}
	k.err = nil
	if n, err := testutil.GatherAndCount(reg, "sipvigil_ebpf_ring_drops_total"); err != nil || n != 1 {
		t.Errorf("ring drops after recovery: %d series, %v", n, err)
	}
	if !strings.Contains(logs.String(), "works again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestTracker(t *testing.T) {
	tr := evidence.New(evidence.Config{QueueSize: 1})
	rec := &observe.Txn{CallID: "c", Method: "OPTIONS", Kind: observe.TxnServer, Msgs: []observe.Msg{
		{Dir: observe.In, Method: "OPTIONS", Mono: 10, Stamp: stamped(5)},
		{Dir: observe.Out, Method: "OPTIONS", Mono: 20, Relays: 1},
		{Dir: observe.In, Method: "OPTIONS", Status: 200, Mono: 30},
	}}
	tr.Txn(rec)
	tr.Txn(rec) // the queue holds one: dropped
	tr.Resolve(rec)
	reg := register(t, metrics.Sources{Tracker: tr})
	compare(t, reg, `
		# TYPE sipvigil_messages_timestamped_total counter
		sipvigil_messages_timestamped_total{source="kernel"} 1
		sipvigil_messages_timestamped_total{source="user"} 2
		# TYPE sipvigil_evidence_records_dropped_total counter
		sipvigil_evidence_records_dropped_total 1
	`, "sipvigil_messages_timestamped_total", "sipvigil_evidence_records_dropped_total")
}

func TestTraces(t *testing.T) {
	reg := register(t, metrics.Sources{Traces: fakeTraces{Spans: 100, Exported: 90, ExportFailed: 6, Dropped: 3}})
	compare(t, reg, `
		# TYPE sipvigil_trace_spans_total counter
		sipvigil_trace_spans_total{outcome="dropped"} 3
		sipvigil_trace_spans_total{outcome="export_failed"} 6
		sipvigil_trace_spans_total{outcome="exported"} 90
		# TYPE sipvigil_trace_spans_dropped_total counter
		sipvigil_trace_spans_dropped_total 9
	`, "sipvigil_trace_spans_total", "sipvigil_trace_spans_dropped_total")
}

func TestBuildInfo(t *testing.T) {
	reg := register(t, metrics.Sources{Build: metrics.BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26.8"}})
	compare(t, reg, `
		# TYPE sipvigil_build_info gauge
		sipvigil_build_info{goversion="go1.26.8",revision="abc123",version="v1.2.3"} 1
	`, "sipvigil_build_info")

	b := metrics.NewBuildInfo("dev")
	if b.Version != "dev" || b.Revision == "" || !strings.HasPrefix(b.GoVersion, "go") {
		t.Errorf("NewBuildInfo = %+v", b)
	}
	// Empty fields still give one well-formed series.
	reg = register(t, metrics.Sources{})
	if n, err := testutil.GatherAndCount(reg, "sipvigil_build_info"); err != nil || n != 1 {
		t.Errorf("build info with empty BuildInfo: %d series, %v", n, err)
	}
}

// TestTypedNil: a nil pointer in an interface field means "off", like nil.
func TestTypedNil(t *testing.T) {
	var d *dispatch.Dispatcher
	var tp *transport.Transport
	var ex *tracing.Exporter
	reg := register(t, metrics.Sources{Dispatcher: d, Transport: tp, Traces: ex})
	n, err := testutil.GatherAndCount(reg, "sipvigil_overload_rejected_total", "sipvigil_parse_errors_total",
		"sipvigil_trace_spans_total", "sipvigil_trace_spans_dropped_total")
	if err != nil || n != 0 {
		t.Errorf("typed-nil sources gave %d series, %v; want none", n, err)
	}
}

// TestRegisterRollsBack: a failed Register leaves nothing of its own
// behind, and says which collector failed and why.
func TestRegisterRollsBack(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := metrics.Register(reg, metrics.Sources{Traces: fakeTraces{}}); err != nil {
		t.Fatal(err)
	}
	// The workers collector registers, then the eBPF one clashes with the
	// one already there.
	err := metrics.Register(reg, metrics.Sources{Workers: []metrics.WorkerSource{fakeWorker{}}})
	var are prometheus.AlreadyRegisteredError
	if err == nil || !strings.Contains(err.Error(), "ebpf") || !errors.As(err, &are) {
		t.Fatalf("second Register = %v, want a wrapped AlreadyRegisteredError naming the ebpf collector", err)
	}
	if n, _ := testutil.GatherAndCount(reg, "sipvigil_transactions_active"); n != 0 {
		t.Errorf("the workers collector was left registered")
	}
	if n, _ := testutil.GatherAndCount(reg, "sipvigil_trace_spans_total"); n != 3 {
		t.Errorf("the first Register's collectors were disturbed: %d trace series", n)
	}
}

// contract is /tmp/metrics-contract.md as a table: name, type and label
// names. sipvigil_hop_transitions_total ("if available") is not: route.Health
// keeps no transition count.
var contract = []struct {
	name   string
	typ    dto.MetricType
	labels string
}{
	{"sipvigil_requests_total", dto.MetricType_COUNTER, "direction,method,transport"},
	{"sipvigil_responses_total", dto.MetricType_COUNTER, "direction,method,status_class,transport"},
	{"sipvigil_retransmissions_total", dto.MetricType_COUNTER, "direction,method"},
	{"sipvigil_parse_errors_total", dto.MetricType_COUNTER, "reason,transport"},
	{"sipvigil_overload_rejected_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_transactions_active", dto.MetricType_GAUGE, ""},
	{"sipvigil_transactions_created_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_transactions_final_total", dto.MetricType_COUNTER, "class"},
	{"sipvigil_dialogs_established_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_suspended_transactions", dto.MetricType_GAUGE, ""},
	{"sipvigil_forward_latency_seconds", dto.MetricType_HISTOGRAM, "kind"},
	{"sipvigil_processing_latency_seconds", dto.MetricType_HISTOGRAM, "kind"},
	{"sipvigil_post_dial_delay_seconds", dto.MetricType_HISTOGRAM, ""},
	{"sipvigil_invite_answer_seconds", dto.MetricType_HISTOGRAM, ""},
	{"sipvigil_queue_depth", dto.MetricType_GAUGE, "queue"},
	{"sipvigil_queue_capacity", dto.MetricType_GAUGE, "queue"},
	{"sipvigil_queue_enqueued_total", dto.MetricType_COUNTER, "queue"},
	{"sipvigil_queue_released_total", dto.MetricType_COUNTER, "queue"},
	{"sipvigil_queue_overflow_total", dto.MetricType_COUNTER, "queue"},
	{"sipvigil_queue_expired_total", dto.MetricType_COUNTER, "queue"},
	{"sipvigil_queue_cancelled_total", dto.MetricType_COUNTER, "queue"},
	{"sipvigil_queue_wait_seconds", dto.MetricType_HISTOGRAM, "queue"},
	{"sipvigil_lookup_requests_total", dto.MetricType_COUNTER, "lookup,outcome"},
	{"sipvigil_worker_inbox_depth", dto.MetricType_GAUGE, "worker"},
	{"sipvigil_worker_busy_seconds_total", dto.MetricType_COUNTER, "worker"},
	{"sipvigil_hop_up", dto.MetricType_GAUGE, "hop,set"},
	{"sipvigil_hop_probe_rtt_seconds", dto.MetricType_GAUGE, "hop,set"},
	{"sipvigil_failovers_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_order_violations_total", dto.MetricType_COUNTER, "kind"},
	{"sipvigil_ebpf_enabled", dto.MetricType_GAUGE, ""},
	{"sipvigil_ebpf_packets_total", dto.MetricType_COUNTER, "stage"},
	{"sipvigil_ebpf_ring_drops_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_ebpf_matched_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_ebpf_unmatched_total", dto.MetricType_COUNTER, "side"},
	{"sipvigil_ebpf_clock_steps_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_messages_timestamped_total", dto.MetricType_COUNTER, "source"},
	{"sipvigil_evidence_records_dropped_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_trace_spans_total", dto.MetricType_COUNTER, "outcome"},
	{"sipvigil_trace_spans_dropped_total", dto.MetricType_COUNTER, ""},
	{"sipvigil_build_info", dto.MetricType_GAUGE, "goversion,revision,version"},
}

// everything registers every collector and sink with every source set,
// as cmd/sipvigil does with eBPF, tracing, queues and lookups on.
func everything(t *testing.T) *prometheus.Registry {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(healthConfig))
	if err != nil {
		t.Fatal(err)
	}
	r := route.New(cfg)
	h := route.NewHealth(r)
	h.Report(r.Hops()[0], true, time.Millisecond)
	lc, err := lookup.New(lookup.Config{Name: "pbx", URL: "http://127.0.0.1:1/route?u={user}"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	err = metrics.Register(reg, metrics.Sources{
		Workers:    []metrics.WorkerSource{fakeWorker{}, fakeWorker{}},
		Dispatcher: fakeDispatcher{},
		Transport: fakeTransport{
			UDP: transport.ProtoCounters{Bad: map[string]uint64{"parse": 0}},
			TCP: transport.ProtoCounters{Bad: map[string]uint64{"parse": 0}},
		},
		Queues:  []*suspend.Queue{queueFixture(t)},
		Lookups: []*lookup.Client{lc},
		Health:  h,
		Kernel:  &fakeKernel{},
		Tracker: evidence.New(evidence.Config{}),
		Traces:  fakeTraces{},
		Build:   metrics.NewBuildInfo("test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := metrics.NewTraffic(reg)
	metrics.NewEvidence(reg, nil)
	tr.Export(resolve(callRecord("lint", true)))
	return reg
}

func TestEverythingLint(t *testing.T) {
	reg := everything(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestContract: with every source on, the sipvigil_* families are exactly
// the contract's, with its types and label names.
func TestContract(t *testing.T) {
	mfs, err := everything(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "sipvigil_") {
			got[mf.GetName()] = mf
		}
	}
	for _, c := range contract {
		mf := got[c.name]
		if mf == nil {
			t.Errorf("%s missing", c.name)
			continue
		}
		delete(got, c.name)
		if mf.GetType() != c.typ {
			t.Errorf("%s type %v, want %v", c.name, mf.GetType(), c.typ)
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
			}
			sort.Strings(names)
			if l := strings.Join(names, ","); l != c.labels {
				t.Errorf("%s labels {%s}, want {%s}", c.name, l, c.labels)
				break
			}
		}
	}
	for name := range got {
		t.Errorf("%s is not in the contract", name)
	}
	if !slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return strings.HasPrefix(mf.GetName(), "go_") }) {
		t.Errorf("go_* collector does not coexist with Register")
	}
}
