// Package metrics exports sipvigil's Prometheus metrics and serves them,
// with /healthz and /readyz, over HTTP.
//
// Metrics are read from the proxy's own counters at scrape time
// (collectors, node_exporter style) or observed by evidence sinks; nothing
// on the SIP path waits for Prometheus. The exposition is OpenMetrics when
// the scraper asks for it, because only OpenMetrics carries the trace_id
// exemplars that link a latency bucket to the trace that landed in it.
package metrics
