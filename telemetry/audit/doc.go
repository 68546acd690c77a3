// Package audit re-checks, after the fact, what the proxy claims about
// message order, from the traces it exported.
//
// The online monitor (telemetry/evidence) runs inside the process whose
// behaviour it judges; an audit that trusted its verdicts (the
// sip.order_violation events and the spans' Error status) would prove
// nothing. So the audit reads only the raw evidence, the sip.in/sip.out
// message events with their monotonic timestamps, rebuilds the forwards
// and runs the same rules (package order) on them. Agreement between the
// two is the point; a disagreement is a bug in one of them.
//
// Traces arrive from a backend in pieces: a call's transactions are
// exported when each completes, several instances write into one trace
// (the trace ID is derived from the Call-ID, see CallTraceID), and a
// search over time windows returns a trace once per window it touches.
// The core therefore takes a flat bag of spans, merges duplicates by
// (trace ID, span ID) and only then groups them into calls. Sources (a
// Jaeger query API, OTLP JSON files) only decode and are kept apart from
// the analysis, which is pure and tested with hand-made traces.
//
// Monotonic timestamps are compared only between spans of one instance
// (same host.name and service.instance.id), because CLOCK_MONOTONIC has a
// different origin on every host and after every reboot; wall-clock event
// times are never used for ordering, only for display.
//
// Percentiles in the report are nearest-rank on the sorted values: p50 and
// p99 are always values that were actually observed, never interpolated,
// which keeps a single slow queue wait or forward visible as such.
package audit
