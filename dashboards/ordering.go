package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/units"

// queueFill is depth over capacity per queue; queues without a capacity
// (0) are left out rather than shown as +Inf.
var queueFill = `max by (queue) (max_over_time(sipvigil_queue_depth{INST}[$__rate_interval]))
/
(max by (queue) (max_over_time(sipvigil_queue_capacity{INST}[$__rate_interval])) > 0)`

func orderingSpec() dashSpec {
	return dashSpec{
		file:  "sipvigil-ordering-queues.json",
		uid:   "sipvigil-ordering-queues",
		title: "sipvigil / Ordering & queues",
		desc:  "Messages forwarded out of order, and the suspend queues that hold transactions back.",
		rows: []rowSpec{
			{title: "Ordering", panels: []panelSpec{
				{title: "Order violations/s by kind", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Messages the online monitor saw forwarded out of order: response_reorder, provisional_after_final, request_reorder. Any non-zero value fires SipvigilOrderViolation.",
					queries: []query{{expr: rate("sipvigil_order_violations_total", "", "kind"), legend: "{{kind}}", emptyWhenHealthy: true}}},
				{title: "Suspended transactions", unit: units.Short, w: 12, h: 8, min: f64(0),
					desc:    "Transactions currently suspended on a queue or a lookup (peak within the step).",
					queries: []query{{expr: gaugeMax("sipvigil_suspended_transactions", "", ""), legend: "suspended"}}},
			}},
			{title: "Queues", panels: []panelSpec{
				{title: "Queue depth vs capacity", unit: units.Short, w: 12, h: 8, min: f64(0), requires: RequiresQueues,
					desc: "Transactions waiting in each suspend queue (peak within the step) and the queue's capacity.",
					queries: []query{
						{expr: gaugeMax("sipvigil_queue_depth", "", "queue"), legend: "{{queue}} depth"},
						{expr: gaugeMax("sipvigil_queue_capacity", "", "queue"), legend: "{{queue}} capacity"},
					}},
				{title: "Queue fill", unit: units.PercentUnit, w: 12, h: 8, min: f64(0), max: f64(1), requires: RequiresQueues,
					desc:    "Peak depth over capacity; at 100% the next enqueue overflows.",
					queries: []query{{expr: queueFill, legend: "{{queue}}"}}},
				{title: "Queue enqueued / released per second", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0), requires: RequiresQueues,
					desc: "Transactions suspended on and released from each queue.",
					queries: []query{
						{expr: rate("sipvigil_queue_enqueued_total", "", "queue"), legend: "{{queue}} enqueued"},
						{expr: rate("sipvigil_queue_released_total", "", "queue"), legend: "{{queue}} released"},
					}},
				{title: "Queue wait (p50, p90, p99)", unit: units.Seconds, w: 12, h: 8, min: f64(0), requires: RequiresQueues,
					desc:    "Time a transaction waited in the queue before release.",
					queries: quantiles("sipvigil_queue_wait_seconds", "", "queue", "{{queue}} ", false)},
				{title: "Queue overflows/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0), requires: RequiresQueues,
					desc:    "Enqueues refused because the queue was full. Any non-zero value fires SipvigilQueueOverflow.",
					queries: []query{{expr: rate("sipvigil_queue_overflow_total", "", "queue"), legend: "{{queue}}", emptyWhenHealthy: true}}},
				{title: "Queue expirations/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0), requires: RequiresQueues,
					desc:    "Suspended transactions that timed out in the queue.",
					queries: []query{{expr: rate("sipvigil_queue_expired_total", "", "queue"), legend: "{{queue}}", emptyWhenHealthy: true}}},
				{title: "Queue cancellations/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0), requires: RequiresQueues,
					desc:    "Suspended transactions cancelled (CANCEL or the caller gave up) while queued.",
					queries: []query{{expr: rate("sipvigil_queue_cancelled_total", "", "queue"), legend: "{{queue}}"}}},
			}},
		},
	}
}
