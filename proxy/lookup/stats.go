package lookup

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds of the latency histogram buckets.
// Fixed so they can be exported as metric buckets without configuration;
// they span a LAN service answering in a millisecond to the 1 s default
// timeout and beyond.
var latencyBounds = [...]time.Duration{
	1 * time.Millisecond,
	2500 * time.Microsecond,
	5 * time.Millisecond,
	10 * time.Millisecond,
	25 * time.Millisecond,
	50 * time.Millisecond,
	100 * time.Millisecond,
	250 * time.Millisecond,
	500 * time.Millisecond,
	1 * time.Second,
	2500 * time.Millisecond,
}

// NumLatencyBuckets is the number of histogram buckets in Stats.Latency:
// one per bound of LatencyBounds plus a last one without upper bound.
const NumLatencyBuckets = len(latencyBounds) + 1

// LatencyBounds returns the upper bounds (inclusive) of Stats.Latency's
// buckets; the last bucket, beyond the last bound, is unbounded.
func LatencyBounds() []time.Duration {
	b := latencyBounds
	return b[:]
}

// Stats is a snapshot of a Client's counters. Every accepted lookup is
// counted in Requests and, once done is called, in exactly one of OK,
// Replies, Timeouts and Errors. Lookups that Lookup refused are counted in
// Overflows only. Counters are read one by one, so a snapshot taken under
// load may be off by the lookups that completed while it was taken.
type Stats struct {
	Requests  uint64 // lookups accepted by Lookup
	OK        uint64 // outcome "ok": hops from the endpoint
	Replies   uint64 // outcome "reply": a reply from the endpoint
	Timeouts  uint64 // outcome "timeout"
	Errors    uint64 // outcome "error", including lookups cut short by shutdown
	Overflows uint64 // lookups refused by Lookup (queue full or stopped)
	InFlight  int64  // HTTP requests in progress
	Queued    int64  // lookups waiting for a pool goroutine

	// Latency counts completed lookups by Result.Elapsed (queueing
	// included); bucket i holds lookups with Elapsed <= LatencyBounds()[i]
	// and above the previous bound. Buckets are not cumulative.
	Latency [NumLatencyBuckets]uint64
}

// counters are the live atomics behind Stats.
type counters struct {
	requests, ok, replies, timeouts, errors, overflows atomic.Uint64
	inFlight, queued                                   atomic.Int64
	latency                                            [NumLatencyBuckets]atomic.Uint64
}

// record counts a delivered Result.
func (s *counters) record(outcome string, elapsed time.Duration) {
	switch outcome {
	case OutcomeOK:
		s.ok.Add(1)
	case OutcomeReply:
		s.replies.Add(1)
	case OutcomeTimeout:
		s.timeouts.Add(1)
	default:
		s.errors.Add(1)
	}
	i := 0
	for i < len(latencyBounds) && elapsed > latencyBounds[i] {
		i++
	}
	s.latency[i].Add(1)
}

// Stats returns a snapshot of the counters. It never blocks.
func (c *Client) Stats() Stats {
	s := &c.stats
	st := Stats{
		Requests:  s.requests.Load(),
		OK:        s.ok.Load(),
		Replies:   s.replies.Load(),
		Timeouts:  s.timeouts.Load(),
		Errors:    s.errors.Load(),
		Overflows: s.overflows.Load(),
		InFlight:  s.inFlight.Load(),
		Queued:    s.queued.Load(),
	}
	for i := range s.latency {
		st.Latency[i] = s.latency[i].Load()
	}
	return st
}
