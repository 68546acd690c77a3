package metrics

import (
	"encoding/hex"

	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/order"
)

// Evidence is the evidence.Sink behind the ordering and kernel-to-kernel
// latency metrics.
type Evidence struct {
	violations *prometheus.CounterVec
	// byKind holds the children of order.Kinds, same index, and forward
	// those of request and response, resolved once so that Export does not
	// hash label values per message.
	byKind  []prometheus.Counter
	forward [numKinds]prometheus.Observer
	sampled func(traceID [16]byte) bool
}

// NewEvidence registers the metrics on reg. sampled reports whether a
// call's trace is exported (exemplars only point at traces that exist);
// nil means no exemplars.
func NewEvidence(reg prometheus.Registerer, sampled func(traceID [16]byte) bool) *Evidence {
	forward := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sipvigil_forward_latency_seconds",
		Help: "Time a forwarded message spent in the proxy, kernel ingress to kernel egress (queue waits included), by kind: request or response.",
		// 10 µs .. 10 s: a relayed response takes tens of µs, a queued
		// re-INVITE its delay, a lookup up to its timeout.
		Buckets: prometheus.ExponentialBucketsRange(10e-6, 10, 25),
	}, []string{"kind"})
	e := &Evidence{
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipvigil_order_violations_total",
			Help: "Messages the proxy forwarded out of order (online monitor), by kind: response_reorder, provisional_after_final, request_reorder.",
		}, []string{"kind"}),
		sampled: sampled,
	}
	reg.MustRegister(e.violations, forward)
	for _, k := range order.Kinds {
		e.byKind = append(e.byKind, e.violations.WithLabelValues(k)) // every kind is a series from the start
	}
	for k, kl := range kindLabels() {
		e.forward[k] = forward.WithLabelValues(kl)
	}
	return e
}

// Export implements evidence.Sink.
func (e *Evidence) Export(t *evidence.Txn) {
	for _, v := range t.Violations {
		e.violation(v.Kind).Inc()
	}
	var labels prometheus.Labels
	if e.sampled != nil {
		if id := evidence.TraceID(t.CallID); e.sampled(id) {
			labels = prometheus.Labels{"trace_id": hex.EncodeToString(id[:])}
		}
	}
	for i := range t.Msgs {
		m := &t.Msgs[i]
		src := t.Relayed(i)
		if src == nil || m.Source != evidence.SourceKernel || src.Source != evidence.SourceKernel {
			continue
		}
		k := 1 // response
		if m.Status == 0 {
			k = 0 // request
		}
		secs := float64(m.Mono-src.Mono) / 1e9
		h := e.forward[k]
		if labels != nil {
			h.(prometheus.ExemplarObserver).ObserveWithExemplar(secs, labels)
		} else {
			h.Observe(secs)
		}
	}
}

// violation returns the counter of kind: pre-resolved for the known kinds,
// looked up for any other (the order package may grow a kind before this
// list is rebuilt; it still gets counted).
func (e *Evidence) violation(kind string) prometheus.Counter {
	for i, k := range order.Kinds {
		if k == kind {
			return e.byKind[i]
		}
	}
	return e.violations.WithLabelValues(kind)
}
