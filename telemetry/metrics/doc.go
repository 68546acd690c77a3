// Package metrics exports sipvigil's Prometheus metrics and serves them,
// with /healthz and /readyz, over HTTP.
//
// Nothing on the SIP path waits for Prometheus. Metrics come from two
// places:
//
//   - Collectors (Register), node_exporter style: at scrape time they read
//     the snapshot APIs the proxy already has (worker and dispatcher
//     counters, transport counters, suspend queues, lookup clients, hop
//     health, the eBPF capture, the evidence tracker, the trace exporter)
//     and emit const metrics. The proxy only bumps its own atomics.
//   - Evidence sinks (Evidence, Traffic) run on the evidence tracker's
//     goroutine, once per finished transaction record with its kernel
//     timestamps resolved: the ordering violations and kernel-to-kernel
//     forward latency (Evidence), and the message counters, processing
//     latency, post-dial delay and answer time (Traffic). Their label
//     children are resolved once, so an Export does not allocate.
//
// The metric names, types and labels are a contract with the dashboards
// and alerts (dashboards/): docs/metrics.md lists them with their meaning
// and the PromQL for common questions.
//
// The exposition is OpenMetrics when the scraper asks for it, because only
// OpenMetrics carries the trace_id exemplars that link a latency bucket to
// the trace that landed in it.
package metrics
