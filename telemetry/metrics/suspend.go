package metrics

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"sipvigil/proxy/lookup"
	"sipvigil/proxy/suspend"
)

// queueSource and lookupSource are what the suspend collector reads;
// *suspend.Queue and *lookup.Client implement them (tests use fakes).
type queueSource interface {
	Stats() suspend.Stats
}

type lookupSource interface {
	Name() string
	Stats() lookup.Stats
}

// suspendCollector reads the suspend queues and HTTP lookups: their own
// counters, and from both how many transactions are suspended right now.
type suspendCollector struct {
	queues  []queueSource
	lookups []lookupSource

	depth, capacity, enqueued, released, overflow, expired, cancelled, wait *prometheus.Desc
	lookupRequests, suspended                                               *prometheus.Desc
}

func newSuspendCollector(qs []queueSource, ls []lookupSource) *suspendCollector {
	q := []string{"queue"}
	return &suspendCollector{
		queues:  qs,
		lookups: ls,
		depth:   prometheus.NewDesc("sipvigil_queue_depth", "Entries waiting in a suspend queue.", q, nil),
		capacity: prometheus.NewDesc("sipvigil_queue_capacity",
			"Configured capacity of a suspend queue; an entry beyond it is answered on_full.", q, nil),
		enqueued: prometheus.NewDesc("sipvigil_queue_enqueued_total", "Requests accepted by a suspend queue.", q, nil),
		released: prometheus.NewDesc("sipvigil_queue_released_total",
			"Entries a suspend queue handed back to their worker (due, or flushed at shutdown).", q, nil),
		overflow: prometheus.NewDesc("sipvigil_queue_overflow_total",
			"Requests refused because the suspend queue was full (answered on_full at once; nothing is evicted).", q, nil),
		expired: prometheus.NewDesc("sipvigil_queue_expired_total",
			"Suspended requests answered 408 because they were not resumed within max_wait.", q, nil),
		cancelled: prometheus.NewDesc("sipvigil_queue_cancelled_total",
			"Suspended requests answered otherwise before their release (CANCEL, shutdown reject); the entry is discarded.", q, nil),
		wait: prometheus.NewDesc("sipvigil_queue_wait_seconds",
			"Time from suspension to resumption on the owning worker, for resumed entries.", q, nil),
		lookupRequests: prometheus.NewDesc("sipvigil_lookup_requests_total",
			"HTTP route lookups by outcome: ok (hops), reply, timeout, error (completed), overflow (refused, queue full).",
			[]string{"lookup", "outcome"}, nil),
		suspended: prometheus.NewDesc("sipvigil_suspended_transactions",
			"Transactions currently suspended on a suspend queue or waiting for an HTTP route lookup.", nil, nil),
	}
}

func (c *suspendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.capacity, c.enqueued, c.released, c.overflow,
		c.expired, c.cancelled, c.wait, c.lookupRequests, c.suspended} {
		ch <- d
	}
}

func (c *suspendCollector) Collect(ch chan<- prometheus.Metric) {
	var suspended float64
	for _, q := range c.queues {
		s := q.Stats()
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.Name)
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Depth), s.Name)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(s.Capacity), s.Name)
		counter(c.enqueued, s.Enqueued)
		counter(c.released, s.Released)
		counter(c.overflow, s.Overflowed)
		counter(c.expired, s.Expired)
		counter(c.cancelled, s.Cancelled)
		ch <- constHistogram(c.wait, s.Wait, s.Name)
		// Every accepted entry ends exactly once, on its worker, as
		// resumed, expired or cancelled (a shutdown reject counts as
		// cancelled); what has not ended is still suspended. Depth is not
		// that number: it still holds cancelled entries until they fall
		// due, and no longer holds released entries on their way back to
		// a busy worker. Counters are read one by one, so clamp the skew.
		suspended += math.Max(0, float64(s.Enqueued)-float64(s.Resumed)-float64(s.Expired)-float64(s.Cancelled))
	}
	for _, l := range c.lookups {
		s := l.Stats()
		name := l.Name()
		for _, o := range []struct {
			outcome string
			n       uint64
		}{
			{lookup.OutcomeOK, s.OK}, {lookup.OutcomeReply, s.Replies}, {lookup.OutcomeTimeout, s.Timeouts},
			{lookup.OutcomeError, s.Errors}, {lookup.OutcomeOverflow, s.Overflows},
		} {
			ch <- prometheus.MustNewConstMetric(c.lookupRequests, prometheus.CounterValue, float64(o.n), name, o.outcome)
		}
		// A lookup in flight or queued is a suspended transaction (until
		// its max_wait, after which the worker has answered 408 but the
		// HTTP request may still be running: a slight overcount bounded
		// by the lookup timeout).
		suspended += float64(max(s.InFlight, 0) + max(s.Queued, 0))
	}
	ch <- prometheus.MustNewConstMetric(c.suspended, prometheus.GaugeValue, suspended)
}

// constHistogram turns a suspend.HistogramSnapshot (non-cumulative counts,
// the last one +Inf) into a Prometheus histogram with the same buckets: the
// queue keeps its own histogram so that it works, and is logged at
// shutdown, without Prometheus.
func constHistogram(d *prometheus.Desc, s suspend.HistogramSnapshot, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(s.Bounds))
	var cum uint64
	for i, n := range s.Counts {
		cum += n
		if i < len(s.Bounds) {
			buckets[s.Bounds[i]] = cum
		}
	}
	// The +Inf bucket is the count: the bucket total (which is what
	// Snapshot.Count is), so that the two always agree.
	return prometheus.MustNewConstHistogram(d, cum, s.Sum, buckets, labels...)
}
