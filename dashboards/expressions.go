//lint:file-ignore SA1019 The classic dashboard schema (package dashboard, schemaVersion 42) is deprecated in the SDK in favour of dashboardv2, but it is the JSON model Grafana's file provisioning loads on every release; the v2 schema only works on recent Grafana behind feature toggles.

package dashboards

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// PanelExpr is one query of one dashboard panel, for tests that evaluate
// the shipped PromQL against a real Prometheus.
//
// What to assert, for each PanelExpr, after the proxy has carried calls:
//
//   - Always: the expression, after ExpandMacros, evaluates with
//     status "success" (no bad_data).
//   - ExpectEmptyWhenHealthy: the panel shows a fault signal (order
//     violations, ring drops, dropped spans, queue overflows, 5xx/6xx
//     ratio, parse errors, ...). On a healthy run it must be "empty", and
//     "empty" here means NO SAMPLE WITH A NON-ZERO VALUE: either an empty
//     vector or a vector whose values are all 0. Both are accepted on
//     purpose: a counter vector whose label values are pre-initialised
//     (sipvigil_order_violations_total{kind} is, see
//     telemetry/metrics/evidence.go; the scrape-time queue counters are
//     too) yields rate() == 0 series, one that is not yields no series, and
//     both mean "nothing went wrong". NaN never occurs in these
//     expressions except for the error ratio with no final responses at
//     all (0/0); treat NaN like 0 there.
//   - Otherwise, unless Optional: the vector is non-empty (values may be 0
//     or NaN, e.g. a quantile over an idle histogram), provided the
//     feature named by Requires is on in the run ("" = always, given the
//     proxy has metrics on and has carried at least one call).
//   - Optional: neither empty nor non-empty is a fault (the series only
//     exists after some event, e.g. a retransmission, or the metric is
//     marked "if available" in the contract); check only that it
//     evaluates.
type PanelExpr struct {
	Dashboard string // file name, e.g. "sipvigil-overview.json"
	Panel     string // panel title
	RefID     string // query refId within the panel ("A", "B", ...)
	Expr      string // PromQL exactly as in the JSON (Grafana macros unexpanded)

	ExpectEmptyWhenHealthy bool
	Optional               bool
	Requires               string // "", RequiresEBPF, RequiresTracing, RequiresHops, RequiresQueues or RequiresLookups
}

// Expressions lists every panel query of every dashboard, in dashboard,
// panel and refId order.
func Expressions() []PanelExpr {
	var out []PanelExpr
	for _, d := range specs() {
		for _, r := range d.rows {
			for _, p := range r.panels {
				for i, q := range p.queries {
					out = append(out, PanelExpr{
						Dashboard:              d.file,
						Panel:                  p.title,
						RefID:                  refID(i),
						Expr:                   expand(q.expr),
						ExpectEmptyWhenHealthy: q.emptyWhenHealthy,
						Optional:               q.optional,
						Requires:               p.requires,
					})
				}
			}
		}
	}
	return out
}

// ExpandMacros turns a dashboard expression into plain PromQL the way
// Grafana would: $__rate_interval becomes rateInterval (e.g. "1m"; it must
// cover at least two scrapes, so 4x the scrape interval or more) and
// $instance becomes instanceRegex (".*" for every instance, as the "All"
// option does).
func ExpandMacros(expr, rateInterval, instanceRegex string) string {
	return strings.NewReplacer(
		RateInterval, rateInterval,
		"$"+InstanceVar, instanceRegex,
	).Replace(expr)
}

// Marshal renders a dashboard the way dashboards/*.json are committed:
// two-space indented JSON with a trailing newline. encoding/json writes
// struct fields in declaration order and map keys sorted, so the output
// is stable.
func Marshal(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil // Encode ends with '\n'
}
