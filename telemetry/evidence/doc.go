// Package evidence turns the workers' transaction records into evidence:
// it joins each message to its kernel timestamp, runs the online ordering
// monitor (package order) on every transaction and dialog, and hands the
// resolved transactions to exporters (traces) and metrics.
//
// It runs on its own goroutine behind a bounded channel. Workers hand over
// a record with a non-blocking send; when the tracker is behind the record
// is dropped and counted, never waited for. A record is held for a short
// settle time so that kernel events still in the ring buffer or in the
// matcher can land, then resolved: messages without a kernel timestamp
// fall back to the proxy's user-space time and are marked as such.
package evidence
