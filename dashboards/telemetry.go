package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/units"

// kernelCoverage is the share of messages with a kernel timestamp.
var kernelCoverage = `sum(rate(sipvigil_messages_timestamped_total{source="kernel", INST}[$__rate_interval]))
/
sum(rate(sipvigil_messages_timestamped_total{INST}[$__rate_interval]))`

func telemetrySpec() dashSpec {
	return dashSpec{
		file:  "sipvigil-ebpf-telemetry.json",
		uid:   "sipvigil-ebpf-telemetry",
		title: "sipvigil / eBPF & telemetry health",
		desc:  "Whether the evidence behind the other dashboards is complete: eBPF capture, timestamps, evidence records, span export, workers and the process.",
		rows: []rowSpec{
			{title: "eBPF", panels: []panelSpec{
				{title: "eBPF programs", viz: vizStat, unit: units.NoUnit, w: 6, h: 4, requires: RequiresEBPF, states: [2]string{"detached", "attached"},
					desc:    "sipvigil_ebpf_enabled: 1 when the capture programs are attached (lowest within the step).",
					queries: []query{{expr: gaugeMin("sipvigil_ebpf_enabled", "", "")}}},
				{title: "Kernel timestamp coverage", viz: vizStat, unit: units.PercentUnit, w: 6, h: 4, min: f64(0), max: f64(1), requires: RequiresEBPF,
					desc:    "Messages timestamped by the kernel over all timestamped messages.",
					queries: []query{{expr: kernelCoverage}}},
				{title: "Ring buffer drops/s", viz: vizStat, unit: units.OpsPerSecond, w: 6, h: 4, limit: f64(0.000001),
					desc:    "Kernel records lost because the ring buffer was full.",
					queries: []query{{expr: rate("sipvigil_ebpf_ring_drops_total", "", ""), emptyWhenHealthy: true}}},
				{title: "Clock steps/s", viz: vizStat, unit: units.OpsPerSecond, w: 6, h: 4, limit: f64(0.000001),
					desc:    "Kernel-to-wall clock offset changes larger than 5 ms.",
					queries: []query{{expr: rate("sipvigil_ebpf_clock_steps_total", "", ""), emptyWhenHealthy: true}}},

				{title: "Packets/s seen vs captured", unit: units.PacketsPerSecond, w: 12, h: 8, min: f64(0), requires: RequiresEBPF,
					desc:    "Packets the programs saw and the ones they captured (SIP on the proxy's ports).",
					queries: []query{{expr: rate("sipvigil_ebpf_packets_total", "", "stage"), legend: "{{stage}}"}}},
				{title: "Ring buffer drops/s over time", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Kernel records lost because the ring buffer was full. Any non-zero value fires SipvigilEBPFRingDrops.",
					queries: []query{{expr: rate("sipvigil_ebpf_ring_drops_total", "", ""), legend: "ring drops", emptyWhenHealthy: true}}},
				{title: "Kernel records matched / unmatched per second", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0), requires: RequiresEBPF,
					desc: "Kernel records matched to a message the proxy read or wrote, and the ones left unmatched on either side.",
					queries: []query{
						{expr: rate("sipvigil_ebpf_matched_total", "", ""), legend: "matched"},
						{expr: rate("sipvigil_ebpf_unmatched_total", "", "side"), legend: "unmatched {{side}}", optional: true},
					}},
				{title: "Clock steps/s over time", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Kernel-to-wall clock offset changes larger than 5 ms (NTP steps, adjtimex, leap seconds).",
					queries: []query{{expr: rate("sipvigil_ebpf_clock_steps_total", "", ""), legend: "clock steps", emptyWhenHealthy: true}}},
			}},
			{title: "Evidence", panels: []panelSpec{
				{title: "Messages timestamped/s by source", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0), stack: true,
					desc:    "Messages whose evidence carries a kernel timestamp and the ones that fell back to user space.",
					queries: []query{{expr: rate("sipvigil_messages_timestamped_total", "", "source"), legend: "{{source}}"}}},
				{title: "Evidence records dropped/s", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Transaction records the evidence pipeline dropped (its sinks fell behind).",
					queries: []query{{expr: rate("sipvigil_evidence_records_dropped_total", "", ""), legend: "dropped", emptyWhenHealthy: true}}},
			}},
			{title: "Tracing", panels: []panelSpec{
				{title: "Spans/s by outcome", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0), requires: RequiresTracing,
					desc:    "Spans exported, failed to export, or dropped before export.",
					queries: []query{{expr: rate("sipvigil_trace_spans_total", "", "outcome"), legend: "{{outcome}}"}}},
				{title: "Spans dropped/s", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Spans lost (export failed or dropped). Any non-zero value fires SipvigilSpansDropped.",
					queries: []query{{expr: rate("sipvigil_trace_spans_dropped_total", "", ""), legend: "dropped", emptyWhenHealthy: true}}},
			}},
			{title: "Workers", panels: []panelSpec{
				{title: "Worker inbox depth", unit: units.Short, w: 12, h: 8, min: f64(0),
					desc:    "Messages waiting in each worker's inbox (peak within the step).",
					queries: []query{{expr: gaugeMax("sipvigil_worker_inbox_depth", "", "worker"), legend: "worker {{worker}}"}}},
				{title: "Worker busy ratio", unit: units.PercentUnit, w: 12, h: 8, min: f64(0), max: f64(1),
					desc:    "Share of time each worker spent busy.",
					queries: []query{{expr: rate("sipvigil_worker_busy_seconds_total", "", "worker"), legend: "worker {{worker}}"}}},
			}},
			{title: "Process", panels: []panelSpec{
				{title: "CPU", unit: units.PercentUnit, w: 8, h: 8, min: f64(0),
					desc:    "CPU time per second (1 = one core).",
					queries: []query{{expr: rate("process_cpu_seconds_total", "", "instance"), legend: "{{instance}}"}}},
				{title: "Resident memory", unit: units.BytesIEC, w: 8, h: 8, min: f64(0),
					desc:    "Resident set size (peak within the step).",
					queries: []query{{expr: gaugeMax("process_resident_memory_bytes", "", "instance"), legend: "{{instance}}"}}},
				{title: "Goroutines", unit: units.Short, w: 8, h: 8, min: f64(0),
					desc:    "Goroutines (peak within the step).",
					queries: []query{{expr: gaugeMax("go_goroutines", "", "instance"), legend: "{{instance}}"}}},
			}},
		},
	}
}
