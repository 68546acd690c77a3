package dashboards

import (
	"fmt"
	"strconv"
)

// Small PromQL helpers for the specs. INST stands for InstanceFilter.

// rate is sum by (by) (rate(metric{INST,extra}[$__rate_interval])); by
// may be empty for a plain sum.
func rate(metric, extra, by string) string {
	return agg("sum", by, fmt.Sprintf("rate(%s[%s])", sel(metric, extra), RateInterval))
}

// gaugeMax is max by (by) (max_over_time(metric{INST,extra}[$__rate_interval])):
// the peak of a gauge within each step, so short spikes stay visible.
func gaugeMax(metric, extra, by string) string {
	return agg("max", by, fmt.Sprintf("max_over_time(%s[%s])", sel(metric, extra), RateInterval))
}

// gaugeMin is the min counterpart of gaugeMax (a hop that was down for one
// scrape within the step shows as down).
func gaugeMin(metric, extra, by string) string {
	return agg("min", by, fmt.Sprintf("min_over_time(%s[%s])", sel(metric, extra), RateInterval))
}

// quantile is histogram_quantile(q, sum by (le, by) (rate(metric_bucket{INST}[$__rate_interval]))).
func quantile(q float64, metric, extra, by string) string {
	le := "le"
	if by != "" {
		le = "le, " + by
	}
	return fmt.Sprintf("histogram_quantile(%s, %s)", strconv.FormatFloat(q, 'f', -1, 64),
		agg("sum", le, fmt.Sprintf("rate(%s[%s])", sel(metric+"_bucket", extra), RateInterval)))
}

// quantiles returns p50, p90 and p99 queries, legends prefixed by the by
// labels when there are any.
func quantiles(metric, extra, by, legendPrefix string, exemplar bool) []query {
	var out []query
	for _, q := range []struct {
		v    float64
		name string
	}{{0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}} {
		out = append(out, query{
			expr:     quantile(q.v, metric, extra, by),
			legend:   legendPrefix + q.name,
			exemplar: exemplar,
		})
	}
	return out
}

func sel(metric, extra string) string {
	if extra == "" {
		return metric + "{" + inst + "}"
	}
	return metric + "{" + extra + ", " + inst + "}"
}

func agg(op, by, inner string) string {
	if by == "" {
		return fmt.Sprintf("%s(%s)", op, inner)
	}
	return fmt.Sprintf("%s by (%s) (%s)", op, by, inner)
}
