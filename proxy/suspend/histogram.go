package suspend

import (
	"fmt"
	"math"
	"sort"
	"sync/atomic"
)

// DefaultBounds returns the bucket upper bounds, in seconds, used for the
// wait and lateness histograms: 100 µs to 60 s, roughly exponential, with
// extra edges between 10 and 20 ms where the common 10 ms re-INVITE delay
// puts every wait. A fresh slice each call, so callers may modify it.
func DefaultBounds() []float64 {
	return []float64{
		.0001, .00025, .0005, .001, .0025, .005, .01, .0105, .011, .0125, .015, .02, .025, .05,
		.1, .25, .5, 1, 2.5, 5, 10, 30, 60,
	}
}

// Histogram is a fixed-bucket histogram of seconds, updated with atomics
// only, so Observe never blocks whichever goroutine measures. Buckets follow
// Prometheus: bucket i counts values v <= Bounds[i] (and > Bounds[i-1]),
// the last one counts everything above the highest bound (+Inf).
type Histogram struct {
	bounds  []float64       // immutable after NewHistogram
	counts  []atomic.Uint64 // len(bounds)+1, non-cumulative
	sumBits atomic.Uint64   // float64 bits, updated by CAS
	maxBits atomic.Uint64   // float64 bits, updated by CAS
}

// NewHistogram builds a histogram with the given upper bounds (nil means
// DefaultBounds). Bounds must be finite and strictly increasing; anything
// else is a programming error and panics.
func NewHistogram(bounds []float64) *Histogram {
	if bounds == nil {
		bounds = DefaultBounds()
	}
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || (i > 0 && b <= bounds[i-1]) {
			panic(fmt.Sprintf("suspend: histogram bounds must be finite and strictly increasing, got %v", bounds))
		}
	}
	return &Histogram{
		bounds: append([]float64(nil), bounds...),
		counts: make([]atomic.Uint64, len(bounds)+1),
	}
}

// Observe records one value in seconds. NaN is ignored: it has no bucket and
// would poison the sum.
func (h *Histogram) Observe(seconds float64) {
	if math.IsNaN(seconds) {
		return
	}
	h.counts[sort.SearchFloat64s(h.bounds, seconds)].Add(1)
	addFloat(&h.sumBits, seconds)
	for {
		old := h.maxBits.Load()
		if seconds <= math.Float64frombits(old) {
			return
		}
		if h.maxBits.CompareAndSwap(old, math.Float64bits(seconds)) {
			return
		}
	}
}

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Snapshot copies the histogram. Reads are per-bucket atomic, not one
// atomic whole: an Observe racing with Snapshot may show in a bucket and not
// yet in Sum. Count is the sum of the bucket counts, so Count always equals
// the cumulative +Inf bucket, as Prometheus requires.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{
		Bounds:  append([]float64(nil), h.bounds...),
		Counts:  make([]uint64, len(h.counts)),
		Sum:     math.Float64frombits(h.sumBits.Load()),
		maxSeen: math.Float64frombits(h.maxBits.Load()),
	}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	return s
}

// HistogramSnapshot is a point-in-time copy of a Histogram; build it with
// Histogram.Snapshot (the maximum is not an exported field, because Max is
// a method).
type HistogramSnapshot struct {
	Bounds []float64 // bucket upper bounds in seconds
	Counts []uint64  // per bucket, non-cumulative; len(Bounds)+1, the last is +Inf
	Sum    float64   // sum of observed values in seconds
	Count  uint64    // number of observed values

	maxSeen float64
}

// Cumulative returns the bucket counts in Prometheus form: element i counts
// every value <= Bounds[i]; the last element (+Inf) equals Count.
func (s HistogramSnapshot) Cumulative() []uint64 {
	out := make([]uint64, len(s.Counts))
	var total uint64
	for i, c := range s.Counts {
		total += c
		out[i] = total
	}
	return out
}

// Max returns the largest value observed (0 when nothing was observed, or
// when every value was negative).
func (s HistogramSnapshot) Max() float64 { return s.maxSeen }

// Quantile estimates the q-quantile (q in [0, 1], clamped) by linear
// interpolation inside the bucket that holds it, like Prometheus'
// histogram_quantile, with two differences meant for bench reports: the
// first bucket starts at 0, and the estimate never exceeds Max, which also
// stands in for the missing upper bound of the +Inf bucket. An empty
// snapshot returns NaN.
func (s HistogramSnapshot) Quantile(q float64) float64 {
	var total uint64
	for _, c := range s.Counts {
		total += c
	}
	if total == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	var below uint64
	for i, c := range s.Counts {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		if i == len(s.Bounds) {
			return s.maxSeen
		}
		lower := 0.0
		if i > 0 {
			lower = s.Bounds[i-1]
		}
		upper := s.Bounds[i]
		v := lower + (upper-lower)*(rank-float64(below))/float64(c)
		return min(v, s.maxSeen)
	}
	return s.maxSeen
}
