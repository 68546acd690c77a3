package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/units"

// hopState is each hop's worst state within the step.
var hopState = gaugeMin("sipvigil_hop_up", "", "set, hop")

func nextHopsSpec() dashSpec {
	return dashSpec{
		file:  "sipvigil-next-hops.json",
		uid:   "sipvigil-next-hops",
		title: "sipvigil / Next hops",
		desc:  "Health of the configured next-hop sets (OPTIONS probing), failovers and lookups.",
		rows: []rowSpec{
			{title: "Health", panels: []panelSpec{
				{title: "Hops up", viz: vizStat, unit: units.Short, w: 6, h: 4, requires: RequiresHops,
					desc:    "Hops up for the whole step.",
					queries: []query{{expr: "sum(" + hopState + ")"}}},
				{title: "Hops down", viz: vizStat, unit: units.Short, w: 6, h: 4, limit: f64(1),
					desc:    "Hops down at some point in the step. SipvigilHopDown fires after 1m down.",
					queries: []query{{expr: "count(" + hopState + " == 0) or vector(0)", emptyWhenHealthy: true}}},
				{title: "Failovers/s", viz: vizStat, unit: units.OpsPerSecond, w: 6, h: 4, limit: f64(0.000001),
					desc:    "Requests retried on another hop of their set.",
					queries: []query{{expr: rate("sipvigil_failovers_total", "", ""), emptyWhenHealthy: true}}},
				{title: "Lookups/s", viz: vizStat, unit: units.OpsPerSecond, w: 6, h: 4, requires: RequiresLookups,
					desc:    "Lookup requests, every lookup and outcome.",
					queries: []query{{expr: rate("sipvigil_lookup_requests_total", "", "")}}},
				{title: "Hop state", viz: vizStateTimeline, unit: units.NoUnit, w: 24, h: 8, requires: RequiresHops, states: [2]string{"DOWN", "UP"},
					desc:    "Each hop's state (DOWN if it was down at any scrape within the step).",
					queries: []query{{expr: hopState, legend: "{{set}} {{hop}}"}}},
				{title: "Probe RTT (last OPTIONS)", unit: units.Seconds, w: 12, h: 8, min: f64(0), requires: RequiresHops,
					desc:    "Round-trip time of the last OPTIONS probe of each hop (absent until first probed).",
					queries: []query{{expr: gaugeMax("sipvigil_hop_probe_rtt_seconds", "", "set, hop"), legend: "{{set}} {{hop}}"}}},
				{title: "Hop state changes", unit: units.Short, w: 12, h: 8, min: f64(0), requires: RequiresHops,
					desc:    "How often each hop changed state (up or down) within the step, from the scraped sipvigil_hop_up; a flap shorter than a scrape is not seen.",
					queries: []query{{expr: "sum by (set, hop) (changes(" + sel("sipvigil_hop_up", "") + "[" + RateInterval + "]))", legend: "{{set}} {{hop}}", optional: true}}},
			}},
			{title: "Failovers & lookups", panels: []panelSpec{
				{title: "Failovers/s over time", unit: units.OpsPerSecond, w: 8, h: 8, min: f64(0),
					desc:    "Requests retried on another hop of their set.",
					queries: []query{{expr: rate("sipvigil_failovers_total", "", ""), legend: "failovers", emptyWhenHealthy: true}}},
				{title: "Lookups/s by outcome", unit: units.OpsPerSecond, w: 12, h: 8, min: f64(0), stack: true, requires: RequiresLookups,
					desc:    "Lookup requests by lookup and outcome.",
					queries: []query{{expr: rate("sipvigil_lookup_requests_total", "", "lookup, outcome"), legend: "{{lookup}} {{outcome}}"}}},
			}},
		},
	}
}
