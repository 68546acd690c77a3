package metrics

import "github.com/prometheus/client_golang/prometheus"

// workerCollector reads every worker's Snapshot at scrape time: the
// workers bump plain atomics and never learn that Prometheus exists.
type workerCollector struct {
	workers []WorkerSource
	labels  []string // worker index as a label value

	active, created, finals, dialogs, failovers, inbox, busy *prometheus.Desc
}

// finalClasses are the transactions_final_total class labels, indexed by
// status/100 (worker.Counters.Finals uses the same index).
func finalClasses() [7]string {
	return [7]string{2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx", 6: "6xx"}
}

func newWorkerCollector(ws []WorkerSource, labels []string) *workerCollector {
	return &workerCollector{
		workers: ws,
		labels:  labels,
		active: prometheus.NewDesc("sipvigil_transactions_active",
			"Server transactions currently alive (open, or absorbing retransmissions after their final response).", nil, nil),
		created: prometheus.NewDesc("sipvigil_transactions_created_total",
			"Server transactions created (one per new request other than ACK).", nil, nil),
		finals: prometheus.NewDesc("sipvigil_transactions_final_total",
			"Final responses sent upstream, one per server transaction, by class (2xx..6xx).", []string{"class"}, nil),
		dialogs: prometheus.NewDesc("sipvigil_dialogs_established_total",
			"Initial INVITEs answered with a 2xx (first 2xx of the transaction).", nil, nil),
		failovers: prometheus.NewDesc("sipvigil_failovers_total",
			"Requests retried on the next hop of their destination set after a failover response, timeout or transport error.", nil, nil),
		inbox: prometheus.NewDesc("sipvigil_worker_inbox_depth",
			"Messages waiting in a worker's inbox.", []string{"worker"}, nil),
		busy: prometheus.NewDesc("sipvigil_worker_busy_seconds_total",
			"Time a worker spent handling messages and timers; rate() is its busy ratio.", []string{"worker"}, nil),
	}
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.created, c.finals, c.dialogs, c.failovers, c.inbox, c.busy} {
		ch <- d
	}
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	var active int64
	var created, dialogs, failovers uint64
	var finals [7]uint64
	for i, w := range c.workers {
		s := w.Snapshot()
		active += s.ActiveServer
		created += s.ServerTxCreated
		dialogs += s.DialogsEstablished
		failovers += s.Failovers
		for k := range finals {
			finals[k] += s.Finals[k]
		}
		ch <- prometheus.MustNewConstMetric(c.inbox, prometheus.GaugeValue, float64(s.InboxDepth), c.labels[i])
		ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, float64(s.BusyNanos)/1e9, c.labels[i])
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(c.created, prometheus.CounterValue, float64(created))
	ch <- prometheus.MustNewConstMetric(c.dialogs, prometheus.CounterValue, float64(dialogs))
	ch <- prometheus.MustNewConstMetric(c.failovers, prometheus.CounterValue, float64(failovers))
	for k, class := range finalClasses() {
		if class != "" {
			ch <- prometheus.MustNewConstMetric(c.finals, prometheus.CounterValue, float64(finals[k]), class)
		}
	}
}

// dispatchCollector reads the dispatcher's admission counters.
type dispatchCollector struct {
	src      DispatcherSource
	rejected *prometheus.Desc
}

func newDispatchCollector(src DispatcherSource) *dispatchCollector {
	return &dispatchCollector{src: src, rejected: prometheus.NewDesc("sipvigil_overload_rejected_total",
		"New requests answered 503 at admission because their worker's inbox was above the new-dialog mark.", nil, nil)}
}

func (c *dispatchCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.rejected }

func (c *dispatchCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(c.src.Snapshot().OverloadRejected))
}

// transportCollector reads the transport's per-protocol bad-input
// counters. The reasons are the transport's fixed set (BadReasons), so the
// label cannot grow.
type transportCollector struct {
	src   TransportSource
	parse *prometheus.Desc
}

func newTransportCollector(src TransportSource) *transportCollector {
	return &transportCollector{src: src, parse: prometheus.NewDesc("sipvigil_parse_errors_total",
		"Received bytes that never became a SIP message, by transport and reason (parse, truncated, too_large, framing).",
		[]string{"transport", "reason"}, nil)}
}

func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.parse }

func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	cs := c.src.Counters()
	for _, p := range []struct {
		name string
		bad  map[string]uint64
	}{{"udp", cs.UDP.Bad}, {"tcp", cs.TCP.Bad}} {
		for reason, n := range p.bad {
			ch <- prometheus.MustNewConstMetric(c.parse, prometheus.CounterValue, float64(n), p.name, reason)
		}
	}
}
