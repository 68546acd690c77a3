package metrics_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/metrics"
	"sipvigil/telemetry/order"
)

const (
	violationsName = "sipvigil_order_violations_total"
	latencyName    = "sipvigil_forward_latency_seconds"
)

var discard = slog.New(slog.DiscardHandler)

func stamped(mono int64) *observe.Stamp {
	s := &observe.Stamp{}
	s.Set(mono, 1)
	return s
}

// resolve turns a record into an evidence.Txn the way the tracker does.
func resolve(rec *observe.Txn) *evidence.Txn {
	tr := evidence.New(evidence.Config{
		Now:  func() int64 { return int64(time.Hour) },
		Wall: func(mono int64) time.Time { return time.Unix(1767225600, mono) },
	})
	return tr.Resolve(rec)
}

// kernelInvite is an INVITE transaction with every message kernel-stamped:
// the INVITE took 250µs through the proxy, the 180 40µs, the 200 10µs.
func kernelInvite(callID string) *observe.Txn {
	msgs := []observe.Msg{
		{Dir: observe.In, Method: "INVITE", Mono: 1_000_100, Stamp: stamped(1_000_000)},
		{Dir: observe.Out, Method: "INVITE", Status: 100, Mono: 1_000_200, Stamp: stamped(1_000_300)}, // generated
		{Dir: observe.Out, Method: "INVITE", Mono: 1_249_900, Stamp: stamped(1_250_000), Relays: 1},
		{Dir: observe.In, Method: "INVITE", Status: 180, Mono: 2_000_100, Stamp: stamped(2_000_000)},
		{Dir: observe.Out, Method: "INVITE", Status: 180, Mono: 2_039_900, Stamp: stamped(2_040_000), Relays: 4},
		{Dir: observe.In, Method: "INVITE", Status: 200, Mono: 3_000_100, Stamp: stamped(3_000_000)},
		{Dir: observe.Out, Method: "INVITE", Status: 200, Mono: 3_009_900, Stamp: stamped(3_010_000), Relays: 6},
		// A timer retransmission of the 200: not a forward.
		{Dir: observe.Out, Method: "INVITE", Status: 200, Mono: 503_009_900, Stamp: stamped(503_010_000), Relays: 6, Retransmission: true},
	}
	return &observe.Txn{CallID: callID, FromTag: "a", Method: "INVITE", CSeq: 1, Kind: observe.TxnServer, Final: 200, Msgs: msgs}
}

const (
	wantRequestSecs  = 250e-6
	wantResponseSums = 40e-6 + 10e-6
)

func family(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}

func byKind(t *testing.T, mf *dto.MetricFamily, kind string) *dto.Metric {
	t.Helper()
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "kind" && lp.GetValue() == kind {
				return m
			}
		}
	}
	t.Fatalf("%s{kind=%q} not gathered", mf.GetName(), kind)
	return nil
}

func histogram(t *testing.T, g prometheus.Gatherer, kind string) *dto.Histogram {
	t.Helper()
	return byKind(t, family(t, g, latencyName), kind).GetHistogram()
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestNewEvidenceLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.NewEvidence(reg, nil)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("Lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewEvidencePredeclared(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.NewEvidence(reg, nil)

	mf := family(t, reg, violationsName)
	if mf.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("%s type = %v, want counter", violationsName, mf.GetType())
	}
	if len(mf.GetMetric()) != len(order.Kinds) {
		t.Fatalf("%s has %d series, want %d", violationsName, len(mf.GetMetric()), len(order.Kinds))
	}
	for _, k := range order.Kinds {
		if v := byKind(t, mf, k).GetCounter().GetValue(); v != 0 {
			t.Errorf("%s{kind=%q} = %v, want 0", violationsName, k, v)
		}
	}

	lat := family(t, reg, latencyName)
	if lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("%s type = %v, want histogram", latencyName, lat.GetType())
	}
	for _, k := range []string{"request", "response"} {
		h := byKind(t, lat, k).GetHistogram()
		if h.GetSampleCount() != 0 {
			t.Errorf("%s{kind=%q} count = %d, want 0", latencyName, k, h.GetSampleCount())
		}
		// Buckets span 10µs .. 10s.
		b := h.GetBucket()
		if len(b) == 0 || !near(b[0].GetUpperBound(), 10e-6) || math.Abs(b[len(b)-1].GetUpperBound()-10) > 1e-9 {
			t.Errorf("%s{kind=%q} buckets = %v..%v", latencyName, k, b[0].GetUpperBound(), b[len(b)-1].GetUpperBound())
		}
	}

	// A second registration on the same registry is a programming error.
	defer func() {
		if recover() == nil {
			t.Errorf("NewEvidence twice on one registry did not panic")
		}
	}()
	metrics.NewEvidence(reg, nil)
}

func TestExportKernelLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := metrics.NewEvidence(reg, nil)
	e.Export(resolve(kernelInvite("call-1")))

	req := histogram(t, reg, "request")
	if req.GetSampleCount() != 1 || !near(req.GetSampleSum(), wantRequestSecs) {
		t.Errorf("request: count %d sum %v, want 1 and %v", req.GetSampleCount(), req.GetSampleSum(), wantRequestSecs)
	}
	resp := histogram(t, reg, "response")
	if resp.GetSampleCount() != 2 || !near(resp.GetSampleSum(), wantResponseSums) {
		t.Errorf("response: count %d sum %v, want 2 and %v (retransmission or 100 counted?)", resp.GetSampleCount(), resp.GetSampleSum(), wantResponseSums)
	}
	// No exemplars without a sampled func.
	for _, k := range []string{"request", "response"} {
		for _, b := range histogram(t, reg, k).GetBucket() {
			if b.GetExemplar() != nil {
				t.Errorf("%s bucket le=%v has an exemplar with sampled == nil", k, b.GetUpperBound())
			}
		}
	}
	// Nothing was out of order.
	for _, k := range order.Kinds {
		if v := byKind(t, family(t, reg, violationsName), k).GetCounter().GetValue(); v != 0 {
			t.Errorf("violations{kind=%q} = %v, want 0", k, v)
		}
	}
}

func TestExportKernelLatencyAck(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := metrics.NewEvidence(reg, nil)
	ack := &observe.Txn{CallID: "c", FromTag: "a", Method: "ACK", CSeq: 1, Kind: observe.TxnAck, Msgs: []observe.Msg{
		{Dir: observe.In, Method: "ACK", Mono: 10_000_500, Stamp: stamped(10_000_000)},
		{Dir: observe.Out, Method: "ACK", Mono: 30_000_000, Stamp: stamped(30_000_500), Relays: 1},
	}}
	e.Export(resolve(ack))
	h := histogram(t, reg, "request")
	if h.GetSampleCount() != 1 || !near(h.GetSampleSum(), 20_000_500e-9) {
		t.Errorf("request: count %d sum %v, want 1 and %v", h.GetSampleCount(), h.GetSampleSum(), 20_000_500e-9)
	}
	if n := histogram(t, reg, "response").GetSampleCount(); n != 0 {
		t.Errorf("response count = %d, want 0", n)
	}
}

func TestExportUserSourcedNotObserved(t *testing.T) {
	cases := map[string]func(rec *observe.Txn){
		"all user": func(rec *observe.Txn) {
			for i := range rec.Msgs {
				rec.Msgs[i].Stamp = nil
			}
		},
		"in user": func(rec *observe.Txn) {
			for i := range rec.Msgs {
				if rec.Msgs[i].Dir == observe.In {
					rec.Msgs[i].Stamp = &observe.Stamp{}
				}
			}
		},
		"out user": func(rec *observe.Txn) {
			for i := range rec.Msgs {
				if rec.Msgs[i].Dir == observe.Out {
					rec.Msgs[i].Stamp = nil
				}
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e := metrics.NewEvidence(reg, func([16]byte) bool { return true })
			rec := kernelInvite("call-1")
			mutate(rec)
			e.Export(resolve(rec))
			for _, k := range []string{"request", "response"} {
				if n := histogram(t, reg, k).GetSampleCount(); n != 0 {
					t.Errorf("%s count = %d, want 0 for user-sourced pairs", k, n)
				}
			}
		})
	}
	t.Run("one pair kernel", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := metrics.NewEvidence(reg, nil)
		rec := kernelInvite("call-1")
		rec.Msgs[3].Stamp = nil // the 180's inbound: only the 200 pair counts
		e.Export(resolve(rec))
		h := histogram(t, reg, "response")
		if h.GetSampleCount() != 1 || !near(h.GetSampleSum(), 10e-6) {
			t.Errorf("response: count %d sum %v, want 1 and 10µs", h.GetSampleCount(), h.GetSampleSum())
		}
	})
}

func TestExportViolations(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := metrics.NewEvidence(reg, nil)
	rec := kernelInvite("call-1")
	rec.Msgs[4].Stamp = stamped(3_020_000) // the 180 leaves after the 200
	r := resolve(rec)
	if len(r.Violations) != 1 {
		t.Fatalf("setup: Violations = %v", r.Violations)
	}
	e.Export(r)
	e.Export(&evidence.Txn{Txn: &observe.Txn{CallID: "x"}, Violations: []order.Violation{
		{Kind: order.RequestReorder}, {Kind: order.RequestReorder},
	}})
	mf := family(t, reg, violationsName)
	want := map[string]float64{order.ProvisionalAfterFinal: 1, order.RequestReorder: 2, order.ResponseReorder: 0}
	for k, n := range want {
		if v := byKind(t, mf, k).GetCounter().GetValue(); v != n {
			t.Errorf("violations{kind=%q} = %v, want %v", k, v, n)
		}
	}
}

// server starts metrics.Listen on a free port and serves until the test
// ends.
func server(t *testing.T, g prometheus.Gatherer, ready func() bool) string {
	t.Helper()
	s, err := metrics.Listen("127.0.0.1:0", g, ready, discard)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url, accept string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

const openMetrics = "application/openmetrics-text; version=1.0.0"

func TestExemplarsOnlyWhenSampled(t *testing.T) {
	sampledID := evidence.TraceID("call-sampled")
	otherID := evidence.TraceID("call-other")
	var mu sync.Mutex
	asked := map[[16]byte]int{}
	reg := prometheus.NewRegistry()
	e := metrics.NewEvidence(reg, func(id [16]byte) bool {
		mu.Lock()
		defer mu.Unlock()
		asked[id]++
		return id == sampledID
	})

	// The unsampled call's 200 takes longer so it lands in its own bucket;
	// its observation must not carry an exemplar, nor overwrite one.
	other := kernelInvite("call-other")
	other.Msgs[6].Stamp = stamped(3_000_000 + 5_000_000) // 5ms
	e.Export(resolve(kernelInvite("call-sampled")))
	e.Export(resolve(other))

	mu.Lock()
	if asked[sampledID] == 0 || asked[otherID] == 0 {
		t.Errorf("sampled func not asked with TraceID(Call-ID): %v", asked)
	}
	if len(asked) != 2 {
		t.Errorf("sampled func asked about %d trace IDs, want 2", len(asked))
	}
	mu.Unlock()

	// Through the registry: every exemplar is the sampled call's.
	sampledHex := hex.EncodeToString(sampledID[:])
	otherHex := hex.EncodeToString(otherID[:])
	found := map[string]int{}
	for _, k := range []string{"request", "response"} {
		for _, b := range histogram(t, reg, k).GetBucket() {
			ex := b.GetExemplar()
			if ex == nil {
				continue
			}
			if len(ex.GetLabel()) != 1 || ex.GetLabel()[0].GetName() != "trace_id" {
				t.Fatalf("%s exemplar labels = %v, want only trace_id", k, ex.GetLabel())
			}
			id := ex.GetLabel()[0].GetValue()
			if id != sampledHex {
				t.Errorf("%s bucket le=%v: exemplar trace_id %s, want only %s", k, b.GetUpperBound(), id, sampledHex)
			}
			found[k]++
			if k == "request" && !near(ex.GetValue(), wantRequestSecs) {
				t.Errorf("request exemplar value = %v, want %v", ex.GetValue(), wantRequestSecs)
			}
		}
	}
	if found["request"] != 1 || found["response"] != 2 {
		t.Errorf("exemplars found: %v, want 1 request and 2 response", found)
	}

	// Through the OpenMetrics exposition.
	base := server(t, reg, nil)
	code, hdr, body := get(t, base+"/metrics", openMetrics)
	if code != http.StatusOK {
		t.Fatalf("/metrics status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("/metrics Content-Type = %q, want OpenMetrics", ct)
	}
	wantEx := `# {trace_id="` + sampledHex + `"}`
	if !strings.Contains(body, wantEx) {
		t.Errorf("exposition lacks %s:\n%s", wantEx, body)
	}
	if strings.Contains(body, otherHex) {
		t.Errorf("exposition carries the unsampled call's trace ID %s", otherHex)
	}
	var exLines int
	for line := range strings.Lines(body) {
		if strings.Contains(line, "# {") {
			exLines++
			if !strings.HasPrefix(line, latencyName+"_bucket{") {
				t.Errorf("exemplar on an unexpected line: %s", line)
			}
		}
	}
	if exLines != 3 {
		t.Errorf("%d exemplar lines, want 3", exLines)
	}
	if !strings.Contains(body, "# EOF") {
		t.Errorf("exposition is not OpenMetrics (no # EOF)")
	}

	// The classic text format never carries exemplars.
	_, _, text := get(t, base+"/metrics", "text/plain")
	if strings.Contains(text, "trace_id") {
		t.Errorf("text exposition carries exemplars")
	}
}

func TestExemplarsNeverSampled(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := metrics.NewEvidence(reg, func([16]byte) bool { return false })
	e.Export(resolve(kernelInvite("call-1")))
	if n := histogram(t, reg, "request").GetSampleCount(); n != 1 {
		t.Fatalf("request count = %d, want 1 (unsampled calls still observed)", n)
	}
	base := server(t, reg, nil)
	_, _, body := get(t, base+"/metrics", openMetrics)
	if strings.Contains(body, "trace_id") {
		t.Errorf("exemplar exposed for an unsampled call:\n%s", body)
	}
}

func TestHealthAndReady(t *testing.T) {
	var ready atomic.Bool
	base := server(t, prometheus.NewRegistry(), ready.Load)

	if code, _, body := get(t, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	if code, _, _ := get(t, base+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz (not ready) = %d, want 503", code)
	}
	// Liveness does not depend on readiness.
	if code, _, _ := get(t, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz (not ready) = %d, want 200", code)
	}
	ready.Store(true)
	if code, _, _ := get(t, base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz (ready) = %d, want 200", code)
	}
	ready.Store(false)
	if code, _, _ := get(t, base+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz (not ready again) = %d, want 503", code)
	}
	if code, _, _ := get(t, base+"/nope", ""); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestReadyNil(t *testing.T) {
	base := server(t, prometheus.NewRegistry(), nil)
	if code, _, _ := get(t, base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz with ready == nil = %d, want 200", code)
	}
}

func TestListenBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	s, err := metrics.Listen(addr, prometheus.NewRegistry(), nil, discard)
	if err == nil {
		s.Serve(canceled())
		t.Fatalf("Listen(%s) on a busy port succeeded", addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q does not wrap EADDRINUSE", err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	s, err := metrics.Listen("127.0.0.1:0", prometheus.NewRegistry(), nil, discard)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ctx)
	}()
	if code, _, _ := get(t, "http://"+addr+"/healthz", ""); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Serve did not return after cancel")
	}
	// The port is free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still bound after Serve returned: %v", err)
	}
	ln.Close()
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
