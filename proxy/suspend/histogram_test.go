package suspend

import (
	"math"
	"slices"
	"sync"
	"testing"
)

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1, 1.5, 3, 10, math.NaN()} {
		h.Observe(v)
	}
	s := h.Snapshot()
	if want := []uint64{2, 1, 1, 1}; !slices.Equal(s.Counts, want) {
		t.Errorf("Counts %v, want %v (le semantics, NaN ignored)", s.Counts, want)
	}
	if want := []uint64{2, 3, 4, 5}; !slices.Equal(s.Cumulative(), want) {
		t.Errorf("Cumulative %v, want %v", s.Cumulative(), want)
	}
	if s.Sum != 16 || s.Count != 5 || s.Max() != 10 {
		t.Errorf("Sum %v Count %d Max %v, want 16 5 10", s.Sum, s.Count, s.Max())
	}
	for _, c := range []struct{ q, want float64 }{
		{0, 0},      // lower edge of the first non-empty bucket
		{0.2, 0.5},  // rank 1 of 2 in [0,1]
		{0.5, 1.5},  // rank 2.5: half-way through (1,2]
		{0.7, 3},    // rank 3.5: half-way through (2,4]
		{1, 10},     // +Inf bucket: the maximum
		{-1, 0},     // clamped
		{2, 10},     // clamped
		{0.99, 10},  // in +Inf
		{0.79, 3.9}, // rank 3.95
	} {
		if got := s.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

func TestHistogramQuantileNeverExceedsMax(t *testing.T) {
	h := NewHistogram(nil)
	for range 10 {
		h.Observe(0.00001)
	}
	if got := h.Snapshot().Quantile(0.99); got != 0.00001 {
		t.Errorf("p99 %v, want the max 1e-05", got)
	}
}

func TestHistogramEmpty(t *testing.T) {
	s := NewHistogram(nil).Snapshot()
	if !math.IsNaN(s.Quantile(0.5)) || s.Max() != 0 || s.Count != 0 || len(s.Counts) != len(DefaultBounds())+1 {
		t.Errorf("empty snapshot %+v, Quantile %v", s, s.Quantile(0.5))
	}
}

func TestHistogramDefaultBounds(t *testing.T) {
	b := DefaultBounds()
	if b[0] != 0.0001 || b[len(b)-1] != 60 || !slices.IsSorted(b) {
		t.Errorf("DefaultBounds %v", b)
	}
	b[0] = 42 // a fresh slice: histograms built earlier or later are unaffected
	if DefaultBounds()[0] != 0.0001 {
		t.Error("DefaultBounds shares its slice")
	}
}

func TestNewHistogramRejectsBadBounds(t *testing.T) {
	for _, b := range [][]float64{{1, 1}, {2, 1}, {math.NaN()}, {math.Inf(1)}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHistogram(%v) did not panic", b)
				}
			}()
			NewHistogram(b)
		}()
	}
}

func TestHistogramConcurrentObserve(t *testing.T) {
	const goroutines, each = 8, 2000
	h := NewHistogram([]float64{0.001, 0.01, 0.1})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				// Binary fractions keep the sum exact whatever the order.
				h.Observe(float64((g*each+i)%4) * 0.125)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != goroutines*each {
		t.Fatalf("Count %d, want %d", s.Count, goroutines*each)
	}
	// Values 0, .125, .25, .375 in equal numbers.
	if want := float64(goroutines*each/4) * (0.125 + 0.25 + 0.375); s.Sum != want {
		t.Errorf("Sum %v, want %v", s.Sum, want)
	}
	if s.Max() != 0.375 {
		t.Errorf("Max %v, want 0.375", s.Max())
	}
	if s.Counts[0] != goroutines*each/4 || s.Counts[3] != 3*goroutines*each/4 {
		t.Errorf("Counts %v", s.Counts)
	}
}
