//lint:file-ignore SA1019 The classic dashboard schema (package dashboard, schemaVersion 42) is deprecated in the SDK in favour of dashboardv2, but it is the JSON model Grafana's file provisioning loads on every release; the v2 schema only works on recent Grafana behind feature toggles.

package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The dashboards are declared as small specs (dash, row, panel, query)
// that are then turned into foundation-SDK builders. One spec feeds both
// the JSON (through the SDK) and Expressions(), so the two cannot drift.

const (
	// DatasourceVar is the name of every dashboard's Prometheus data
	// source variable; panels and queries reference it as ${datasource}.
	DatasourceVar = "datasource"
	// InstanceVar is the name of every dashboard's instance variable.
	InstanceVar = "instance"
	// InstanceFilter is the label matcher every selector carries.
	InstanceFilter = `instance=~"$instance"`
	// RateInterval is the Grafana macro every range selector uses.
	RateInterval = "$__rate_interval"
	// JaegerUID is the uid of the provisioned Jaeger data source that the
	// Prometheus data source's exemplarTraceIdDestinations point at.
	JaegerUID = "jaeger"

	dsRef = "${" + DatasourceVar + "}"

	// inst is the placeholder the specs below use for InstanceFilter, to
	// keep the PromQL readable.
	inst = "INST"
)

// Feature names for PanelExpr.Requires.
const (
	RequiresEBPF    = "ebpf"    // eBPF programs attached (serve with ebpf on, as root)
	RequiresTracing = "tracing" // OTLP tracing exporter on
	RequiresHops    = "hops"    // at least one next-hop set with health probing
	RequiresQueues  = "queues"  // at least one suspend queue configured
	RequiresLookups = "lookups" // at least one lookup client configured
)

type vizKind int

const (
	vizTimeseries vizKind = iota
	vizStat
	vizStateTimeline
)

type query struct {
	expr     string // PromQL with INST for InstanceFilter
	legend   string
	exemplar bool
	// emptyWhenHealthy, optional: see PanelExpr.
	emptyWhenHealthy bool
	optional         bool
}

type panelSpec struct {
	title    string
	desc     string
	unit     string
	viz      vizKind
	w, h     uint32
	min, max *float64
	stack    bool
	requires string
	// states maps the values 0 and 1 to texts (red, green), e.g. DOWN/UP.
	states [2]string
	// nameOnly shows the series name (legend) instead of the value in a
	// stat panel (build info).
	nameOnly bool
	// limit draws a red threshold line at this value (an SLO).
	limit   *float64
	queries []query
}

type rowSpec struct {
	title  string
	panels []panelSpec
}

type dashSpec struct {
	file  string // file name under dashboards/, e.g. "sipvigil-overview.json"
	uid   string
	title string
	desc  string
	rows  []rowSpec
}

// alertsAnnotation marks the time ranges where the rules of alerts.yml
// were firing (Prometheus's own ALERTS series).
const alertsAnnotation = `ALERTS{alertname=~"Sipvigil.+", alertstate="firing", ` + InstanceFilter + `}`

func f64(v float64) *float64 { return &v }

func expand(expr string) string { return strings.ReplaceAll(expr, inst, InstanceFilter) }

func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(dsRef)}
}

func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		ShowLegend(true).
		DisplayMode(common.LegendDisplayModeTable).
		Placement(common.LegendPlacementBottom).
		Calcs([]string{"mean", "max", "lastNotNull"})
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().
		Mode(common.TooltipDisplayModeMulti).
		Sort(common.SortOrderDescending)
}

func targets(p panelSpec) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(p.queries))
	for i, q := range p.queries {
		b := prometheus.NewDataqueryBuilder().
			RefId(refID(i)).
			Datasource(promDS()).
			Expr(expand(q.expr)).
			EditorMode(prometheus.QueryEditorModeCode).
			Range()
		if q.legend != "" {
			b = b.LegendFormat(q.legend)
		}
		if q.exemplar {
			b = b.Exemplar(true)
		}
		out = append(out, b)
	}
	return out
}

func refID(i int) string { return string(rune('A' + i)) }

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func step(v *float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: v, Color: color}
}

func stateMappings(states [2]string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: cog.ToPtr(states[0]), Color: cog.ToPtr("red"), Index: cog.ToPtr[int32](0)},
			"1": {Text: cog.ToPtr(states[1]), Color: cog.ToPtr("green"), Index: cog.ToPtr[int32](1)},
		},
	}}}
}

func hasStates(p panelSpec) bool { return p.states[0] != "" }

func buildPanel(id uint32, p panelSpec) cog.Builder[dashboard.Panel] {
	desc := p.desc
	if p.requires != "" {
		desc += fmt.Sprintf(" (Needs %s.)", p.requires)
	}
	switch p.viz {
	case vizStat:
		b := stat.NewPanelBuilder().
			Id(id).Title(p.title).Description(desc).Datasource(promDS()).
			Unit(p.unit).Height(p.h).Span(p.w).
			Targets(targets(p)).
			GraphMode(common.BigValueGraphModeArea).
			ColorMode(common.BigValueColorModeValue).
			Orientation(common.VizOrientationAuto).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
			Thresholds(thresholds(step(nil, "green")))
		if hasStates(p) {
			b = b.Mappings(stateMappings(p.states)).Thresholds(thresholds(step(nil, "red"), step(f64(1), "green")))
		}
		if p.limit != nil {
			b = b.Thresholds(thresholds(step(nil, "green"), step(p.limit, "red")))
		}
		switch {
		case p.nameOnly:
			b = b.TextMode(common.BigValueTextModeName).GraphMode(common.BigValueGraphModeNone)
		case strings.Contains(p.queries[0].legend, "{{"):
			b = b.TextMode(common.BigValueTextModeValueAndName)
		}
		if p.min != nil {
			b = b.Min(*p.min)
		}
		if p.max != nil {
			b = b.Max(*p.max)
		}
		return b
	case vizStateTimeline:
		b := statetimeline.NewPanelBuilder().
			Id(id).Title(p.title).Description(desc).Datasource(promDS()).
			Unit(p.unit).Height(p.h).Span(p.w).
			Targets(targets(p)).
			Legend(legend().DisplayMode(common.LegendDisplayModeList).Calcs([]string{})).
			Tooltip(tooltip()).
			ShowValue(common.VisibilityModeAuto).
			MergeValues(true)
		if hasStates(p) {
			b = b.Mappings(stateMappings(p.states)).Thresholds(thresholds(step(nil, "red"), step(f64(1), "green")))
		}
		return b
	default:
		b := timeseries.NewPanelBuilder().
			Id(id).Title(p.title).Description(desc).Datasource(promDS()).
			Unit(p.unit).Height(p.h).Span(p.w).
			Targets(targets(p)).
			Legend(legend()).
			Tooltip(tooltip()).
			LineWidth(1).
			FillOpacity(10).
			ShowPoints(common.VisibilityModeNever).
			SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
			Thresholds(thresholds(step(nil, "green")))
		if p.limit != nil {
			b = b.Thresholds(thresholds(step(nil, "green"), step(p.limit, "red"))).
				ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
		}
		if p.stack {
			b = b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		if p.min != nil {
			b = b.Min(*p.min)
		}
		if p.max != nil {
			b = b.Max(*p.max)
		}
		return b
	}
}

func (d dashSpec) builder() *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(d.title).
		Uid(d.uid).
		Description(d.desc).
		Tags([]string{"sipvigil"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Annotation(dashboard.NewAnnotationQueryBuilder().
			Name("Annotations & Alerts").
			Datasource(common.DataSourceRef{Type: cog.ToPtr("grafana"), Uid: cog.ToPtr("-- Grafana --")}).
			Type("dashboard").
			BuiltIn(1).
			Enable(true).
			Hide(true).
			IconColor("rgba(0, 211, 255, 1)")).
		Annotation(dashboard.NewAnnotationQueryBuilder().
			Name("sipvigil alerts").
			Datasource(promDS()).
			Expr(alertsAnnotation).
			TitleFormat("{{alertname}}").
			TextFormat("{{severity}} on {{instance}}").
			TagKeys("alertname,severity").
			Step("30s").
			Enable(true).
			IconColor("red")).
		Link(dashboard.NewDashboardLinkBuilder("sipvigil").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"sipvigil"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true).
			Icon("external link").
			Tooltip("Other sipvigil dashboards")).
		WithVariable(dashboard.NewDatasourceVariableBuilder(DatasourceVar).
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder(InstanceVar).
			Label("Instance").
			Datasource(promDS()).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(sipvigil_build_info, instance)")}).
			Definition("label_values(sipvigil_build_info, instance)").
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
	var id uint32
	for _, r := range d.rows {
		id++
		b = b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			b = b.WithPanel(buildPanel(id, p))
		}
	}
	return b
}

// mustBuild builds a spec; the specs are constants of this package, so a
// build error is a programming error the tests catch.
func (d dashSpec) mustBuild() dashboard.Dashboard {
	out, err := d.builder().Build()
	if !isNilErr(err) {
		panic(fmt.Sprintf("dashboards: building %s: %v", d.file, err))
	}
	return out
}

// isNilErr handles the SDK's typed-nil gotcha: Build, Validate and
// UnmarshalJSONStrict may return a nil or empty cog.BuildErrors wrapped in
// a non-nil error interface.
func isNilErr(err error) bool {
	if err == nil {
		return true
	}
	be, ok := err.(cog.BuildErrors)
	return ok && len(be) == 0
}

// specs lists every dashboard in a fixed order.
func specs() []dashSpec {
	return []dashSpec{overviewSpec(), orderingSpec(), nextHopsSpec(), telemetrySpec()}
}

// Overview is the calls, requests, responses, latency and errors dashboard.
func Overview() dashboard.Dashboard { return overviewSpec().mustBuild() }

// OrderingQueues is the ordering violations and suspend queues dashboard.
func OrderingQueues() dashboard.Dashboard { return orderingSpec().mustBuild() }

// NextHops is the next-hop health, failover and lookup dashboard.
func NextHops() dashboard.Dashboard { return nextHopsSpec().mustBuild() }

// Telemetry is the eBPF, evidence, tracing, worker and process health
// dashboard.
func Telemetry() dashboard.Dashboard { return telemetrySpec().mustBuild() }

// All returns every dashboard by file name (relative to dashboards/).
func All() map[string]dashboard.Dashboard {
	out := make(map[string]dashboard.Dashboard)
	for _, d := range specs() {
		out[d.file] = d.mustBuild()
	}
	return out
}

// Files returns the dashboard file names in a stable order.
func Files() []string {
	var out []string
	for _, d := range specs() {
		out = append(out, d.file)
	}
	return out
}
