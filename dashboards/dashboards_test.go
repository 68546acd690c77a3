//lint:file-ignore SA1019 The classic dashboard schema (package dashboard, schemaVersion 42) is deprecated in the SDK in favour of dashboardv2, but it is the JSON model Grafana's file provisioning loads on every release; the v2 schema only works on recent Grafana behind feature toggles.

package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"go.yaml.in/yaml/v3"
)

// wantUIDs pins every dashboard's file name and uid: links and
// bookmarks depend on them, so a change must be deliberate.
var wantUIDs = map[string]string{
	"sipvigil-overview.json":        "sipvigil-overview",
	"sipvigil-ordering-queues.json": "sipvigil-ordering-queues",
	"sipvigil-next-hops.json":       "sipvigil-next-hops",
	"sipvigil-ebpf-telemetry.json":  "sipvigil-ebpf-telemetry",
}

// committed reads dashboards/*.json as committed.
func committed(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = raw
	}
	return out
}

// (a) The committed JSON is what the generator writes.
func TestCommittedJSONUpToDate(t *testing.T) {
	files := committed(t)
	all := All()
	if len(all) < 4 {
		t.Fatalf("All() has %d dashboards, want at least 4", len(all))
	}
	for _, name := range Files() {
		want, err := Marshal(all[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, ok := files[name]
		switch {
		case !ok:
			t.Errorf("dashboards/%s is missing: run make dashboards", name)
		case !bytes.Equal(got, want):
			t.Errorf("dashboards/%s is stale (differs from the generator's output at byte %d): run make dashboards", name, firstDiff(got, want))
		}
	}
	for name := range files {
		if _, ok := all[name]; !ok {
			t.Errorf("dashboards/%s is not built by the generator: remove it or run make dashboards", name)
		}
	}
	if got := len(Files()); got != len(all) {
		t.Errorf("Files() lists %d dashboards, All() has %d", got, len(all))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestMarshalStable(t *testing.T) {
	for name, d := range All() {
		a, err := Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Marshal(All()[name])
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds marshal differently", name)
		}
		if !bytes.HasSuffix(a, []byte("}\n")) || bytes.HasSuffix(a, []byte("\n\n")) {
			t.Errorf("%s: want exactly one trailing newline", name)
		}
		if !bytes.HasPrefix(a, []byte("{\n  \"")) {
			t.Errorf("%s: want two-space indented JSON", name)
		}
	}
}

// load strictly unmarshals and validates one committed dashboard and
// returns its model.
//
// Two SDK v0.0.22 gotchas are handled here:
//   - UnmarshalJSONStrict (and the Build of some builders) return a
//     typed-nil cog.BuildErrors on success, a non-nil error interface:
//     isNilErr.
//   - The same typed nil bites inside the SDK: the strict unmarshalers of
//     its disjunctions (PanelOrRowPanel, ValueMapping, table cell options)
//     do `if err := x.UnmarshalJSONStrict(raw); err != nil { return err }`,
//     so on success they return before storing the value: a strictly
//     unmarshalled dashboard has every panel and row slot empty. Errors
//     still propagate (a real error is a non-empty BuildErrors), so the
//     strict pass is the check, and the model comes from the lenient
//     json.Unmarshal (the types' UnmarshalJSON, same plugin variants), whose lossless re-marshal
//     TestStrictRoundTrip then pins.
func load(t *testing.T, name string, raw []byte) dashboard.Dashboard {
	t.Helper()
	plugins.RegisterDefaultPlugins()
	var strict dashboard.Dashboard
	if err := strict.UnmarshalJSONStrict(raw); !isNilErr(err) {
		t.Fatalf("%s: strict unmarshal: %v", name, err)
	}
	if err := strict.Validate(); !isNilErr(err) {
		t.Fatalf("%s: validate (strict): %v", name, err)
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); !isNilErr(err) {
		t.Fatalf("%s: unmarshal: %v", name, err)
	}
	if err := d.Validate(); !isNilErr(err) {
		t.Fatalf("%s: validate: %v", name, err)
	}
	if len(strict.Panels) != len(d.Panels) {
		t.Fatalf("%s: strict unmarshal saw %d panels, lenient %d", name, len(strict.Panels), len(d.Panels))
	}
	return d
}

// (b) Strict round trip: every committed file unmarshals with unknown
// fields rejected, validates, and marshals back byte for byte.
func TestStrictRoundTrip(t *testing.T) {
	for name, raw := range committed(t) {
		d := load(t, name, raw)
		again, err := Marshal(d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(again, raw) {
			t.Errorf("%s: strict unmarshal + marshal is not lossless (first difference at byte %d)", name, firstDiff(again, raw))
		}
		if got := deref(d.Uid); got != wantUIDs[name] {
			t.Errorf("%s: uid %q, want %q", name, got, wantUIDs[name])
		}
	}
	// The strict path does reject what it should (guards against the
	// check silently accepting anything).
	plugins.RegisterDefaultPlugins()
	bad := []string{
		`{"title": "x", "refresh_typo": "30s", "templating": {}, "annotations": {}}`,
		`{"title": "x", "templating": {}, "annotations": {}, "panels": [{"type": "timeseries", "id": 1, "targets": [{"datasource": {"type": "prometheus", "uid": "x"}, "expr": "up", "legendFormatt": "y"}]}]}`,
	}
	for _, raw := range bad {
		var d dashboard.Dashboard
		if err := d.UnmarshalJSONStrict([]byte(raw)); isNilErr(err) {
			t.Errorf("strict unmarshal accepted %s", raw)
		}
	}
}

func TestIsNilErr(t *testing.T) {
	// The SDK's own success value: a typed-nil cog.BuildErrors.
	plugins.RegisterDefaultPlugins()
	var p dashboard.Panel
	err := p.UnmarshalJSONStrict([]byte(`{"type": "timeseries", "title": "x"}`))
	if !isNilErr(err) {
		t.Errorf("a successful strict unmarshal must count as no error, got %#v", err)
	}
	t.Logf("Panel.UnmarshalJSONStrict on success: err != nil is %v (%T)", err != nil, err)
	if isNilErr(fmt.Errorf("boom")) || isNilErr(cog.BuildErrors{{Path: "p", Message: "m"}}) {
		t.Error("real errors must count")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// panelsOf flattens rows (expanded or collapsed) and panels.
func panelsOf(d dashboard.Dashboard) (panels []dashboard.Panel, rows []dashboard.RowPanel) {
	for _, pr := range d.Panels {
		if pr.RowPanel != nil {
			rows = append(rows, *pr.RowPanel)
			panels = append(panels, pr.RowPanel.Panels...)
		}
		if pr.Panel != nil {
			panels = append(panels, *pr.Panel)
		}
	}
	return panels, rows
}

// (c) Every panel: unique id, datasource, units, legend and multi tooltip,
// layout, and queries that use only contract metrics with the instance
// filter and $__rate_interval.
func TestPanels(t *testing.T) {
	wantDS := common.DataSourceRef{Type: strPtr("prometheus"), Uid: strPtr("${datasource}")}
	for name, raw := range committed(t) {
		d := load(t, name, raw)
		panels, rows := panelsOf(d)
		if len(panels) == 0 {
			t.Fatalf("%s: no panels", name)
		}
		ids := map[uint32]string{}
		for _, r := range rows {
			if prev, dup := ids[r.Id]; dup || r.Id == 0 {
				t.Errorf("%s: row %q id %d is zero or taken by %q", name, deref(r.Title), r.Id, prev)
			}
			ids[r.Id] = deref(r.Title)
		}
		var rects []dashboard.GridPos
		for _, r := range rows {
			if r.GridPos == nil || r.GridPos.W != 24 || r.GridPos.H != 1 {
				t.Errorf("%s: row %q gridPos %+v, want a full-width line", name, deref(r.Title), r.GridPos)
				continue
			}
			rects = append(rects, *r.GridPos)
		}
		for _, p := range panels {
			title := deref(p.Title)
			where := fmt.Sprintf("%s: panel %q", name, title)
			if title == "" {
				t.Errorf("%s: a panel has no title", name)
			}
			if p.Id == nil || *p.Id == 0 {
				t.Errorf("%s has no id", where)
			} else {
				if prev, dup := ids[*p.Id]; dup {
					t.Errorf("%s: id %d already used by %q", where, *p.Id, prev)
				}
				ids[*p.Id] = title
			}
			if p.Datasource == nil || !sameDS(*p.Datasource, wantDS) {
				t.Errorf("%s: datasource %v, want prometheus ${datasource}", where, dsString(p.Datasource))
			}
			if p.FieldConfig == nil || deref(p.FieldConfig.Defaults.Unit) == "" {
				t.Errorf("%s: no unit", where)
			}
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: bad gridPos %+v", where, p.GridPos)
			} else {
				for _, r := range rects {
					if overlap(r, *p.GridPos) {
						t.Errorf("%s: gridPos %+v overlaps %+v", where, *p.GridPos, r)
					}
				}
				rects = append(rects, *p.GridPos)
			}
			switch o := p.Options.(type) {
			case *timeseries.Options:
				checkLegendTooltip(t, where, o.Legend, o.Tooltip)
			case *statetimeline.Options:
				checkLegendTooltip(t, where, o.Legend, o.Tooltip)
			case *stat.Options:
				// A stat panel has neither legend nor tooltip.
			default:
				t.Errorf("%s: unexpected panel type %q (options %T)", where, p.Type, p.Options)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			refs := map[string]bool{}
			for i, tg := range p.Targets {
				q, ok := tg.(*prometheus.Dataquery)
				if !ok {
					t.Errorf("%s: target %d is %T, want *prometheus.Dataquery", where, i, tg)
					continue
				}
				ref := deref(q.RefId)
				if ref == "" || refs[ref] {
					t.Errorf("%s: target %d refId %q empty or repeated", where, i, ref)
				}
				refs[ref] = true
				if q.Datasource == nil || !sameDS(*q.Datasource, wantDS) {
					t.Errorf("%s/%s: query datasource %v, want prometheus ${datasource}", where, ref, dsString(q.Datasource))
				}
				checkExpr(t, where+"/"+ref, q.Expr)
			}
		}
		if len(rows) == 0 {
			t.Errorf("%s: no rows", name)
		}
	}
}

func checkLegendTooltip(t *testing.T, where string, l common.VizLegendOptions, tt common.VizTooltipOptions) {
	t.Helper()
	if !l.ShowLegend || l.DisplayMode == common.LegendDisplayModeHidden {
		t.Errorf("%s: legend hidden", where)
	}
	if tt.Mode != common.TooltipDisplayModeMulti {
		t.Errorf("%s: tooltip mode %q, want multi", where, tt.Mode)
	}
}

// checkExpr applies the dashboard query rules to one expression.
func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expr", where)
		return
	}
	if !strings.Contains(expr, RateInterval) {
		t.Errorf("%s: %q does not use %s", where, expr, RateInterval)
	}
	p, err := parsePromQL(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return
	}
	if len(p.selectors) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	for _, sel := range p.selectors {
		if !hasInstanceFilter(sel) {
			t.Errorf("%s: selector %s has no %s", where, sel.name, InstanceFilter)
		}
		if sel.rng != RateInterval {
			t.Errorf("%s: selector %s range [%s], want [%s]", where, sel.name, sel.rng, RateInterval)
		}
	}
	for _, e := range checkContract(p) {
		t.Errorf("%s: %s", where, e)
	}
}

func hasInstanceFilter(sel selectorRef) bool {
	for _, m := range sel.matchers {
		if m.label == "instance" && m.op == "=~" && m.value == "$instance" {
			return true
		}
	}
	return false
}

func overlap(a, b dashboard.GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

func sameDS(a, b common.DataSourceRef) bool {
	return deref(a.Type) == deref(b.Type) && deref(a.Uid) == deref(b.Uid)
}

func dsString(r *common.DataSourceRef) string {
	if r == nil {
		return "<nil>"
	}
	return deref(r.Type) + "/" + deref(r.Uid)
}

func strPtr(s string) *string { return &s }

// Every dashboard has the datasource and instance variables, the alert
// annotation and the cross-links.
func TestVariablesAndAnnotations(t *testing.T) {
	for name, raw := range committed(t) {
		d := load(t, name, raw)
		vars := map[string]dashboard.VariableModel{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		ds, ok := vars[DatasourceVar]
		if !ok || ds.Type != "datasource" || ds.Query == nil || deref(ds.Query.String) != "prometheus" {
			t.Errorf("%s: want a datasource variable %q of type prometheus, got %+v", name, DatasourceVar, ds)
		}
		in, ok := vars[InstanceVar]
		if !ok || in.Type != "query" || in.Query == nil || deref(in.Query.String) != "label_values(sipvigil_build_info, instance)" {
			t.Errorf("%s: want a query variable %q = label_values(sipvigil_build_info, instance)", name, InstanceVar)
		} else if in.Datasource == nil || deref(in.Datasource.Uid) != "${datasource}" || deref(in.Datasource.Type) != "prometheus" {
			t.Errorf("%s: instance variable datasource %s", name, dsString(in.Datasource))
		}
		found := false
		for _, a := range d.Annotations.List {
			if e := deref(a.Expr); e != "" {
				found = true
				p, err := parsePromQL(e)
				if err != nil || len(p.selectors) != 1 || p.selectors[0].name != "ALERTS" || !hasInstanceFilter(p.selectors[0]) {
					t.Errorf("%s: alert annotation %q: %v", name, e, err)
				}
			}
		}
		if !found {
			t.Errorf("%s: no alert annotation", name)
		}
		if len(d.Links) == 0 || d.Links[0].Type != dashboard.DashboardLinkTypeDashboards {
			t.Errorf("%s: want a link to the other sipvigil dashboards", name)
		}
	}
}

// The forward-latency panels query exemplars (the datasource turns their
// trace_id into a Jaeger link: TestProvisioning).
func TestForwardLatencyExemplars(t *testing.T) {
	n := 0
	for name, raw := range committed(t) {
		panels, _ := panelsOf(load(t, name, raw))
		for _, p := range panels {
			for _, tg := range p.Targets {
				q := tg.(*prometheus.Dataquery)
				if strings.Contains(q.Expr, "sipvigil_forward_latency_seconds") {
					n++
					if !deref(q.Exemplar) {
						t.Errorf("%s: %q/%s: exemplars off", name, deref(p.Title), deref(q.RefId))
					}
				}
			}
		}
	}
	if n == 0 {
		t.Error("no forward-latency query")
	}
}

// Expressions() mirrors the committed JSON exactly and flags the fault
// panels.
func TestExpressions(t *testing.T) {
	exprs := Expressions()
	type key struct{ dash, panel, ref string }
	inJSON := map[key]string{}
	for name, raw := range committed(t) {
		panels, _ := panelsOf(load(t, name, raw))
		for _, p := range panels {
			for _, tg := range p.Targets {
				q := tg.(*prometheus.Dataquery)
				inJSON[key{name, deref(p.Title), deref(q.RefId)}] = q.Expr
			}
		}
	}
	if len(exprs) != len(inJSON) {
		t.Errorf("Expressions() has %d entries, the JSON %d queries", len(exprs), len(inJSON))
	}
	requires := map[string]bool{"": true, RequiresEBPF: true, RequiresTracing: true, RequiresHops: true, RequiresQueues: true, RequiresLookups: true}
	seen := map[key]bool{}
	for _, e := range exprs {
		k := key{e.Dashboard, e.Panel, e.RefID}
		if seen[k] {
			t.Errorf("Expressions(): %v twice (panel titles must be unique per dashboard)", k)
		}
		seen[k] = true
		if got, ok := inJSON[k]; !ok || got != e.Expr {
			t.Errorf("Expressions(): %v = %q, JSON has %q", k, e.Expr, got)
		}
		if e.ExpectEmptyWhenHealthy && e.Optional {
			t.Errorf("%v: both ExpectEmptyWhenHealthy and Optional", k)
		}
		if !requires[e.Requires] {
			t.Errorf("%v: unknown Requires %q", k, e.Requires)
		}
		plain := ExpandMacros(e.Expr, "1m", ".*")
		if strings.Contains(plain, "$") {
			t.Errorf("%v: macros left after ExpandMacros: %q", k, plain)
		}
		if _, err := parsePromQL(plain); err != nil {
			t.Errorf("%v: expanded %q: %v", k, plain, err)
		}
	}
	// Fault signals must be flagged; their mere presence is no fault.
	mustBeEmpty := []string{"sipvigil_order_violations_total", "sipvigil_ebpf_ring_drops_total",
		"sipvigil_trace_spans_dropped_total", "sipvigil_queue_overflow_total", "sipvigil_evidence_records_dropped_total",
		"sipvigil_overload_rejected_total", "sipvigil_parse_errors_total", "sipvigil_failovers_total", "sipvigil_ebpf_clock_steps_total"}
	for _, m := range mustBeEmpty {
		n := 0
		for _, e := range exprs {
			if strings.Contains(e.Expr, m+"{") {
				n++
				if !e.ExpectEmptyWhenHealthy {
					t.Errorf("%s %q/%s uses %s but is not ExpectEmptyWhenHealthy", e.Dashboard, e.Panel, e.RefID, m)
				}
			}
		}
		if n == 0 {
			t.Errorf("no panel shows %s", m)
		}
	}
	for _, e := range exprs {
		if strings.Contains(e.Expr, `class=~"5xx|6xx"`) && !e.ExpectEmptyWhenHealthy {
			t.Errorf("%s %q: the 5xx/6xx error signal must be ExpectEmptyWhenHealthy", e.Dashboard, e.Panel)
		}
	}
	// Every contract metric appears on some dashboard.
	for m := range contract {
		found := false
		for _, e := range exprs {
			if strings.Contains(e.Expr, m+"{") || strings.Contains(e.Expr, m+"_bucket{") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("contract metric %s is on no dashboard", m)
		}
	}
}

func TestExpandMacros(t *testing.T) {
	got := ExpandMacros(`rate(x{instance=~"$instance"}[$__rate_interval])`, "2m", "a|b")
	if want := `rate(x{instance=~"a|b"}[2m])`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParsePromQL(t *testing.T) {
	p, err := parsePromQL(`histogram_quantile(0.99, sum by (le, kind) (rate(sipvigil_forward_latency_seconds_bucket{kind="request", instance=~"$instance"}[$__rate_interval]))) > 0.5 and on (instance) vector(1)`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.selectors) != 1 || p.selectors[0].name != "sipvigil_forward_latency_seconds_bucket" || len(p.selectors[0].matchers) != 2 || p.selectors[0].rng != RateInterval {
		t.Errorf("selectors %+v", p.selectors)
	}
	if strings.Join(p.grouping, ",") != "le,kind,instance" {
		t.Errorf("grouping %v", p.grouping)
	}
	if errs := checkContract(p); len(errs) != 0 {
		t.Errorf("contract: %v", errs)
	}
	for _, bad := range []string{
		`rate(sipvigil_request_total{instance=~"$instance"}[$__rate_interval])`,             // not in the contract
		`sum by (methd) (rate(sipvigil_requests_total[$__rate_interval]))`,                  // unknown grouping label
		`rate(sipvigil_requests_total{directon="in"}[$__rate_interval])`,                    // unknown label
		`rate(sipvigil_transactions_final_total{class=~"5XX|6xx"}[$__rate_interval])`,       // not a contract value
		`sipvigil_forward_latency_seconds{kind="request"}`,                                  // a histogram has no bare series
		`rat(sipvigil_requests_total[$__rate_interval])`,                                    // unknown function
		`sum(rate(sipvigil_requests_total{instance=~"$instance"}[$__rate_interval])) $oops`, // stray macro
	} {
		p, err := parsePromQL(bad)
		if err == nil && len(checkContract(p)) == 0 {
			t.Errorf("accepted %s", bad)
		}
	}
}

// provisioning files

type dsFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name     string         `yaml:"name"`
		Type     string         `yaml:"type"`
		UID      string         `yaml:"uid"`
		Access   string         `yaml:"access"`
		URL      string         `yaml:"url"`
		JSONData map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type dashProvFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name    string         `yaml:"name"`
		Type    string         `yaml:"type"`
		Options map[string]any `yaml:"options"`
	} `yaml:"providers"`
}

// readYAML decodes path into v; strict rejects fields v does not declare.
func readYAML(t *testing.T, path string, strict bool, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestProvisioning(t *testing.T) {
	var ds dsFile
	readYAML(t, "provisioning/datasources.yml", false, &ds)
	if ds.APIVersion != 1 {
		t.Errorf("datasources.yml: apiVersion %d, want 1", ds.APIVersion)
	}
	byUID := map[string]int{}
	for i, d := range ds.Datasources {
		byUID[d.UID] = i
		if d.Name == "" || d.Access != "proxy" {
			t.Errorf("datasource %q: want a name and access proxy", d.UID)
		}
	}
	pi, ok := byUID["prometheus"]
	if !ok {
		t.Fatal("no Prometheus data source with uid prometheus")
	}
	prom := ds.Datasources[pi]
	if prom.Type != "prometheus" || prom.URL != "http://127.0.0.1:9090" {
		t.Errorf("prometheus: type %q url %q", prom.Type, prom.URL)
	}
	dests, _ := prom.JSONData["exemplarTraceIdDestinations"].([]any)
	okDest := false
	for _, d := range dests {
		m, _ := d.(map[string]any)
		if m["name"] == "trace_id" && m["datasourceUid"] == JaegerUID {
			okDest = true
		}
	}
	if !okDest {
		t.Errorf("prometheus: exemplarTraceIdDestinations %v, want {name: trace_id, datasourceUid: %s}", dests, JaegerUID)
	}
	ji, ok := byUID[JaegerUID]
	if !ok {
		t.Fatalf("no Jaeger data source with uid %s", JaegerUID)
	}
	if j := ds.Datasources[ji]; j.Type != "jaeger" || j.URL != "http://127.0.0.1:16686" {
		t.Errorf("jaeger: type %q url %q", j.Type, j.URL)
	}

	var dp dashProvFile
	readYAML(t, "provisioning/dashboards.yml", false, &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 {
		t.Fatalf("dashboards.yml: apiVersion %d, %d providers", dp.APIVersion, len(dp.Providers))
	}
	if p := dp.Providers[0]; p.Type != "file" || p.Options["path"] == nil || p.Options["path"] == "" {
		t.Errorf("dashboards.yml: want a file provider with options.path, got %+v", p)
	}
}

// alert rules

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string           `yaml:"name"`
		Interval    string           `yaml:"interval"`
		InputSeries []map[string]any `yaml:"input_series"`
		AlertTests  []struct {
			EvalTime  string `yaml:"eval_time"`
			AlertName string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var wantAlerts = []string{"SipvigilOrderViolation", "SipvigilQueueOverflow", "SipvigilHopDown",
	"SipvigilEBPFRingDrops", "SipvigilSpansDropped", "SipvigilErrorBudgetBurn"}

// Every alert rule is well formed, uses contract metrics, and has a
// promtool unit test where it fires (per severity) and one where it stays
// silent on healthy input.
func TestAlertRulesCovered(t *testing.T) {
	var rf ruleFile
	readYAML(t, "alerts.yml", true, &rf)
	var tf ruleTestFile
	readYAML(t, "alerts_test.yml", true, &tf)
	if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != "alerts.yml" {
		t.Errorf("alerts_test.yml: rule_files %v, want [alerts.yml]", tf.RuleFiles)
	}

	fires := map[string]bool{}  // alertname/severity
	silent := map[string]bool{} // alertname, in a "healthy" test
	for _, tc := range tf.Tests {
		for _, at := range tc.AlertTests {
			if len(at.ExpAlerts) == 0 && strings.Contains(tc.Name, "healthy") {
				silent[at.AlertName] = true
			}
			for _, ea := range at.ExpAlerts {
				fires[at.AlertName+"/"+ea.ExpLabels["severity"]] = true
			}
		}
	}

	names := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q is not an alert; add it to the test coverage here", g.Name, r.Record)
				continue
			}
			names[r.Alert] = true
			sev := r.Labels["severity"]
			if sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s (%s): no %s annotation", r.Alert, sev, a)
				}
			}
			p, err := parsePromQL(r.Expr)
			if err != nil {
				t.Errorf("%s: %q: %v", r.Alert, r.Expr, err)
			} else {
				for _, e := range checkContract(p) {
					t.Errorf("%s: %s", r.Alert, e)
				}
				if !contains(p.grouping, "instance") && !strings.HasPrefix(strings.TrimSpace(r.Expr), "sipvigil_hop_up") {
					t.Errorf("%s: aggregate by instance so ALERTS keeps it", r.Alert)
				}
			}
			if !fires[r.Alert+"/"+sev] {
				t.Errorf("%s (%s): no promtool test where it fires", r.Alert, sev)
			}
			if !silent[r.Alert] {
				t.Errorf("%s: no promtool test (named \"...healthy...\") where it stays silent", r.Alert)
			}
		}
	}
	for _, n := range wantAlerts {
		if !names[n] {
			t.Errorf("alert %s missing from alerts.yml", n)
		}
	}
	var got []string
	for n := range names {
		got = append(got, n)
	}
	sort.Strings(got)
	t.Logf("alerts: %v", got)
}

// (d) promtool check rules / test rules, when promtool is installed
// (Debian package prometheus). With CI=true a missing promtool fails.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not on PATH and CI=true: install the prometheus package (.ci/deps.sh)")
		}
		t.Skip("promtool not on PATH (apt-get install -y --no-install-recommends prometheus); set CI=true to make this a failure")
	}
	// Prometheus's own parser on every dashboard expression: each one,
	// macros expanded as Grafana would, becomes a recording rule.
	exprRules := filepath.Join(t.TempDir(), "dashboard_exprs.yml")
	var rules []map[string]string
	for i, e := range Expressions() {
		rules = append(rules, map[string]string{
			"record": fmt.Sprintf("sipvigil_dashboard_expr_%d", i),
			"expr":   ExpandMacros(e.Expr, "1m", ".*"),
		})
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exprRules, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "rules", exprRules},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}
