package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/units"

// errorRatio is 5xx+6xx final responses over all final responses, per
// instance; the same ratio SipvigilErrorBudgetBurn alerts on (alerts.yml).
var errorRatio = `sum by (instance) (rate(sipvigil_transactions_final_total{class=~"5xx|6xx", INST}[$__rate_interval]))
/
sum by (instance) (rate(sipvigil_transactions_final_total{INST}[$__rate_interval]))`

// sloErrorRatio is the error budget of the 99.9% final-response SLO.
const sloErrorRatio = 0.001

func overviewSpec() dashSpec {
	return dashSpec{
		file:  "sipvigil-overview.json",
		uid:   "sipvigil-overview",
		title: "sipvigil / Overview",
		desc:  "Calls, requests and responses through the proxy, call setup and forwarding latency, and errors.",
		rows: []rowSpec{
			{title: "Traffic", panels: []panelSpec{
				{title: "Version", viz: vizStat, unit: units.NoUnit, w: 4, h: 4, nameOnly: true,
					desc:    "sipvigil_build_info of the selected instances.",
					queries: []query{{expr: gaugeMax("sipvigil_build_info", "", "instance, version, revision"), legend: "{{version}} ({{revision}})"}}},
				{title: "INVITEs/s", viz: vizStat, unit: units.CountsPerSecond, w: 4, h: 4,
					desc:    "INVITE requests received (initial and re-INVITEs, retransmissions excluded).",
					queries: []query{{expr: rate("sipvigil_requests_total", `direction="in", method="INVITE"`, "")}}},
				{title: "Requests/s", viz: vizStat, unit: units.RequestsPerSecond, w: 4, h: 4,
					desc:    "All requests received.",
					queries: []query{{expr: rate("sipvigil_requests_total", `direction="in"`, "")}}},
				{title: "Active transactions", viz: vizStat, unit: units.Short, w: 4, h: 4,
					desc:    "Server transactions currently open (peak within the step).",
					queries: []query{{expr: gaugeMax("sipvigil_transactions_active", "", "")}}},
				{title: "Suspended transactions", viz: vizStat, unit: units.Short, w: 4, h: 4,
					desc:    "Transactions currently suspended on a queue or a lookup (peak within the step).",
					queries: []query{{expr: gaugeMax("sipvigil_suspended_transactions", "", "")}}},
				{title: "Error ratio", viz: vizStat, unit: units.PercentUnit, w: 4, h: 4, limit: f64(sloErrorRatio),
					desc:    "5xx and 6xx final responses over all final responses sent upstream; red above the 0.1% budget of the 99.9% SLO.",
					queries: []query{{expr: errorRatio, legend: "{{instance}}", emptyWhenHealthy: true}}},

				{title: "Calls/s", unit: units.CountsPerSecond, w: 8, h: 8, min: f64(0),
					desc: "INVITE requests received and dialogs established (2xx to an initial INVITE).",
					queries: []query{
						{expr: rate("sipvigil_requests_total", `direction="in", method="INVITE"`, ""), legend: "INVITE received"},
						{expr: rate("sipvigil_dialogs_established_total", "", ""), legend: "dialogs established"},
					}},
				{title: "Requests/s by method", unit: units.RequestsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "Requests by direction (in from a peer, out to a peer) and method; retransmissions excluded.",
					queries: []query{{expr: rate("sipvigil_requests_total", "", "direction, method"), legend: "{{direction}} {{method}}"}}},
				{title: "Responses/s by class", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "Responses by direction and status class (1xx..6xx).",
					queries: []query{{expr: rate("sipvigil_responses_total", "", "direction, status_class"), legend: "{{direction}} {{status_class}}"}}},

				{title: "Final responses/s by class", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0), stack: true,
					desc:    "Final responses sent upstream by class (2xx..6xx): the SLO's denominator.",
					queries: []query{{expr: rate("sipvigil_transactions_final_total", "", "class"), legend: "{{class}}"}}},
				{title: "Transactions", unit: units.Short, w: 8, h: 8, min: f64(0),
					desc: "Open and suspended server transactions (peak within the step).",
					queries: []query{
						{expr: gaugeMax("sipvigil_transactions_active", "", ""), legend: "active"},
						{expr: gaugeMax("sipvigil_suspended_transactions", "", ""), legend: "suspended"},
					}},
				{title: "Transactions created/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "Server transactions created.",
					queries: []query{{expr: rate("sipvigil_transactions_created_total", "", ""), legend: "created"}}},
			}},
			{title: "Latency", panels: []panelSpec{
				{title: "Post-dial delay (INVITE in → first 18x out)", unit: units.Seconds, w: 12, h: 8, min: f64(0),
					desc:    "Initial INVITE received to first 18x forwarded, kernel timestamps when eBPF is on, else user-space ones.",
					queries: quantiles("sipvigil_post_dial_delay_seconds", "", "", "", false)},
				{title: "Answer delay (INVITE in → 200 out)", unit: units.Seconds, w: 12, h: 8, min: f64(0),
					desc:    "Initial INVITE received to 200 forwarded.",
					queries: quantiles("sipvigil_invite_answer_seconds", "", "", "", false)},
				{title: "Forward latency (kernel ingress → kernel egress)", unit: units.Seconds, w: 12, h: 8, min: f64(0), requires: RequiresEBPF,
					desc:    "Time a forwarded message spent in the proxy, from the kernel's ingress timestamp to its egress timestamp, queue waits included. Exemplars carry trace_id and open the call's trace in Jaeger (the Prometheus data source's exemplarTraceIdDestinations point at uid jaeger).",
					queries: quantiles("sipvigil_forward_latency_seconds", "", "kind", "{{kind}} ", true)},
				{title: "Processing latency (user space)", unit: units.Seconds, w: 12, h: 8, min: f64(0),
					desc:    "User-space read to hand-off to the transport.",
					queries: quantiles("sipvigil_processing_latency_seconds", "", "kind", "{{kind}} ", false)},
			}},
			{title: "Errors", panels: []panelSpec{
				{title: "Error ratio (5xx+6xx / final responses)", unit: units.PercentUnit, w: 8, h: 8, min: f64(0), limit: f64(sloErrorRatio),
					desc:    "5xx and 6xx final responses over all final responses sent upstream. The dashed line is the 0.1% error budget of the 99.9% SLO that SipvigilErrorBudgetBurn alerts on.",
					queries: []query{{expr: errorRatio, legend: "{{instance}}", emptyWhenHealthy: true}}},
				{title: "Error final responses/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "5xx and 6xx final responses sent upstream.",
					queries: []query{{expr: rate("sipvigil_transactions_final_total", `class=~"5xx|6xx"`, "class"), legend: "{{class}}", emptyWhenHealthy: true}}},
				{title: "Overload rejections/s", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "Requests refused with 503 at admission (overload).",
					queries: []query{{expr: rate("sipvigil_overload_rejected_total", "", ""), legend: "503 at admission", emptyWhenHealthy: true}}},
				{title: "Bad input/s by reason", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Transport input the proxy could not use (parse, truncated, too_large, framing, ...).",
					queries: []query{{expr: rate("sipvigil_parse_errors_total", "", "transport, reason"), legend: "{{transport}} {{reason}}", emptyWhenHealthy: true}}},
				{title: "Retransmissions/s", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0),
					desc:    "Retransmissions absorbed inbound and re-sent outbound on timers; steady retransmissions mean loss or a slow peer.",
					queries: []query{{expr: rate("sipvigil_retransmissions_total", "", "direction, method"), legend: "{{direction}} {{method}}", optional: true}}},
			}},
		},
	}
}
