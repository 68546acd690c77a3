package metrics

import (
	"cmp"
	"log/slog"
	"runtime"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/telemetry/evidence"
)

// kernelCollector reports whether the eBPF capture runs and, when it does,
// the programs' counters, the matcher's and the clock's.
type kernelCollector struct {
	src KernelSource // nil: eBPF off
	log *slog.Logger
	// failing remembers that the last read of the BPF counters failed, so
	// a persistent failure is logged once, not at every scrape.
	failing atomic.Bool

	enabled, packets, ringDrops, matched, unmatched, clockSteps *prometheus.Desc
}

func newKernelCollector(src KernelSource, log *slog.Logger) *kernelCollector {
	return &kernelCollector{
		src: src,
		log: log,
		enabled: prometheus.NewDesc("sipvigil_ebpf_enabled",
			"1 when the eBPF capture programs are attached (kernel timestamps), 0 otherwise.", nil, nil),
		packets: prometheus.NewDesc("sipvigil_ebpf_packets_total",
			"Packets the TC programs ran on (seen, SIP or not, both directions) and events they wrote to the ring (captured).",
			[]string{"stage"}, nil),
		ringDrops: prometheus.NewDesc("sipvigil_ebpf_ring_drops_total",
			"Captured packets lost because the eBPF ring buffer was full.", nil, nil),
		matched: prometheus.NewDesc("sipvigil_ebpf_matched_total",
			"Kernel events joined to a message the proxy read or wrote.", nil, nil),
		unmatched: prometheus.NewDesc("sipvigil_ebpf_unmatched_total",
			"Entries that never found their partner (expired after match_ttl or evicted from a full table), by side: kernel event or proxy packet.",
			[]string{"side"}, nil),
		clockSteps: prometheus.NewDesc("sipvigil_ebpf_clock_steps_total",
			"Monotonic-to-wall clock offset changes larger than the step threshold (wall clock stepped).", nil, nil),
	}
}

func (c *kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.enabled, c.packets, c.ringDrops, c.matched, c.unmatched, c.clockSteps} {
		ch <- d
	}
}

func (c *kernelCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		ch <- prometheus.MustNewConstMetric(c.enabled, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.enabled, prometheus.GaugeValue, 1)
	// A failed map read leaves these three out of this scrape rather than
	// failing the whole scrape (promhttp answers 500 to any collect
	// error), which would hide every other metric exactly when something
	// is wrong.
	if bc, err := c.src.Counters(); err != nil {
		if !c.failing.Swap(true) {
			c.log.Warn("metrics: reading eBPF counters failed; sipvigil_ebpf_packets_total and sipvigil_ebpf_ring_drops_total are left out until it works", "err", err)
		}
	} else {
		if c.failing.Swap(false) {
			c.log.Info("metrics: reading eBPF counters works again")
		}
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(bc.Seen), "seen")
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(bc.Captured), "captured")
		ch <- prometheus.MustNewConstMetric(c.ringDrops, prometheus.CounterValue, float64(bc.RingDrops))
	}
	ms := c.src.MatcherStats()
	ch <- prometheus.MustNewConstMetric(c.matched, prometheus.CounterValue, float64(ms.Matched))
	ch <- prometheus.MustNewConstMetric(c.unmatched, prometheus.CounterValue, float64(ms.UnmatchedKernel+ms.EvictedKernel), "kernel")
	ch <- prometheus.MustNewConstMetric(c.unmatched, prometheus.CounterValue, float64(ms.UnmatchedPacket+ms.EvictedPacket), "packet")
	ch <- prometheus.MustNewConstMetric(c.clockSteps, prometheus.CounterValue, float64(c.src.ClockSteps()))
}

// trackerCollector reads the evidence tracker's counters.
type trackerCollector struct {
	t                    *evidence.Tracker
	timestamped, dropped *prometheus.Desc
}

func newTrackerCollector(t *evidence.Tracker) *trackerCollector {
	return &trackerCollector{
		t: t,
		timestamped: prometheus.NewDesc("sipvigil_messages_timestamped_total",
			"Messages of resolved transaction records by timestamp source: kernel (eBPF) or user (fallback to the proxy's own time).",
			[]string{"source"}, nil),
		dropped: prometheus.NewDesc("sipvigil_evidence_records_dropped_total",
			"Transaction records lost because the evidence tracker's queue was full (no trace, no message metrics, no ordering check for them).",
			nil, nil),
	}
}

func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.timestamped
	ch <- c.dropped
}

func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	ch <- prometheus.MustNewConstMetric(c.timestamped, prometheus.CounterValue, float64(s.MsgsKernel), evidence.SourceKernel.String())
	ch <- prometheus.MustNewConstMetric(c.timestamped, prometheus.CounterValue, float64(s.MsgsUser), evidence.SourceUser.String())
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
}

// tracesCollector reads the OTLP exporter's span counters.
type tracesCollector struct {
	src            TracesSource
	spans, dropped *prometheus.Desc
}

func newTracesCollector(src TracesSource) *tracesCollector {
	return &tracesCollector{
		src: src,
		spans: prometheus.NewDesc("sipvigil_trace_spans_total",
			"Spans by outcome: exported (accepted by the backend), export_failed (lost to export errors), dropped (export queue full).",
			[]string{"outcome"}, nil),
		dropped: prometheus.NewDesc("sipvigil_trace_spans_dropped_total",
			"Spans that never reached the backend: export_failed + dropped.", nil, nil),
	}
}

func (c *tracesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.spans
	ch <- c.dropped
}

func (c *tracesCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(s.Exported), "exported")
	ch <- prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(s.ExportFailed), "export_failed")
	ch <- prometheus.MustNewConstMetric(c.spans, prometheus.CounterValue, float64(s.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.ExportFailed+s.Dropped))
}

// buildCollector is the constant sipvigil_build_info series.
type buildCollector struct {
	desc *prometheus.Desc
	m    prometheus.Metric
}

func newBuildCollector(b BuildInfo) *buildCollector {
	d := prometheus.NewDesc("sipvigil_build_info",
		"Always 1; the labels say which sipvigil build is running.", []string{"version", "revision", "goversion"}, nil)
	return &buildCollector{desc: d, m: prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 1,
		cmp.Or(b.Version, "unknown"), cmp.Or(b.Revision, "unknown"), cmp.Or(b.GoVersion, runtime.Version()))}
}

func (c *buildCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *buildCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }
