package dashboards

import (
	"fmt"
	"regexp"
	"strings"
)

// The metrics contract (/tmp/metrics-contract.md, implemented in
// telemetry/metrics): every sipvigil_ metric the dashboards and alerts may
// use, its type and its labels. A nil value list means any value; a list
// restricts the values a matcher may name. instance and job (added by the
// scrape) are allowed on every metric, le on histogram buckets.
type contractMetric struct {
	typ    string // counter, gauge, histogram
	labels map[string][]string
}

var (
	methods       = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER", "other"}
	directions    = []string{"in", "out"}
	transports    = []string{"udp", "tcp"}
	statusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"}
	finalClasses  = []string{"2xx", "3xx", "4xx", "5xx", "6xx"}
	msgKinds      = []string{"request", "response"}
)

var contract = map[string]contractMetric{
	"sipvigil_requests_total":          {"counter", map[string][]string{"direction": directions, "transport": transports, "method": methods}},
	"sipvigil_responses_total":         {"counter", map[string][]string{"direction": directions, "transport": transports, "method": methods, "status_class": statusClasses}},
	"sipvigil_retransmissions_total":   {"counter", map[string][]string{"direction": directions, "method": methods}},
	"sipvigil_parse_errors_total":      {"counter", map[string][]string{"transport": transports, "reason": nil}},
	"sipvigil_overload_rejected_total": {"counter", nil},

	"sipvigil_transactions_active":        {"gauge", nil},
	"sipvigil_transactions_created_total": {"counter", nil},
	"sipvigil_transactions_final_total":   {"counter", map[string][]string{"class": finalClasses}},
	"sipvigil_dialogs_established_total":  {"counter", nil},
	"sipvigil_suspended_transactions":     {"gauge", nil},

	"sipvigil_forward_latency_seconds":    {"histogram", map[string][]string{"kind": msgKinds}},
	"sipvigil_processing_latency_seconds": {"histogram", map[string][]string{"kind": msgKinds}},
	"sipvigil_post_dial_delay_seconds":    {"histogram", nil},
	"sipvigil_invite_answer_seconds":      {"histogram", nil},

	"sipvigil_queue_depth":           {"gauge", map[string][]string{"queue": nil}},
	"sipvigil_queue_capacity":        {"gauge", map[string][]string{"queue": nil}},
	"sipvigil_queue_enqueued_total":  {"counter", map[string][]string{"queue": nil}},
	"sipvigil_queue_released_total":  {"counter", map[string][]string{"queue": nil}},
	"sipvigil_queue_overflow_total":  {"counter", map[string][]string{"queue": nil}},
	"sipvigil_queue_expired_total":   {"counter", map[string][]string{"queue": nil}},
	"sipvigil_queue_cancelled_total": {"counter", map[string][]string{"queue": nil}},
	"sipvigil_queue_wait_seconds":    {"histogram", map[string][]string{"queue": nil}},

	// outcome: the fixed set of proxy/lookup (lookup.Outcome*).
	"sipvigil_lookup_requests_total": {"counter", map[string][]string{"lookup": nil, "outcome": {"ok", "reply", "timeout", "error", "overflow"}}},

	"sipvigil_worker_inbox_depth":        {"gauge", map[string][]string{"worker": nil}},
	"sipvigil_worker_busy_seconds_total": {"counter", map[string][]string{"worker": nil}},

	"sipvigil_hop_up":                {"gauge", map[string][]string{"set": nil, "hop": nil}},
	"sipvigil_hop_probe_rtt_seconds": {"gauge", map[string][]string{"set": nil, "hop": nil}},
	"sipvigil_failovers_total":       {"counter", nil},

	"sipvigil_order_violations_total": {"counter", map[string][]string{"kind": {"response_reorder", "provisional_after_final", "request_reorder"}}},

	"sipvigil_ebpf_enabled":                   {"gauge", nil},
	"sipvigil_ebpf_packets_total":             {"counter", map[string][]string{"stage": {"seen", "captured"}}},
	"sipvigil_ebpf_ring_drops_total":          {"counter", nil},
	"sipvigil_ebpf_matched_total":             {"counter", nil},
	"sipvigil_ebpf_unmatched_total":           {"counter", map[string][]string{"side": {"kernel", "packet"}}},
	"sipvigil_ebpf_clock_steps_total":         {"counter", nil},
	"sipvigil_messages_timestamped_total":     {"counter", map[string][]string{"source": {"kernel", "user"}}},
	"sipvigil_evidence_records_dropped_total": {"counter", nil},
	"sipvigil_trace_spans_total":              {"counter", map[string][]string{"outcome": {"exported", "export_failed", "dropped"}}},
	"sipvigil_trace_spans_dropped_total":      {"counter", nil},

	"sipvigil_build_info": {"gauge", map[string][]string{"version": nil, "revision": nil, "goversion": nil}},
}

// lookupMetric resolves a series name to its contract entry: histogram
// _bucket/_sum/_count series map to the histogram. ok is false for names
// outside the contract; go_* and process_* (the standard collectors) are
// accepted with any labels.
func lookupMetric(name string) (m contractMetric, bucket, ok bool) {
	if m, ok := contract[name]; ok {
		return m, false, m.typ != "histogram" // a histogram has no bare series
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, found := strings.CutSuffix(name, suf); found {
			if m, ok := contract[base]; ok && m.typ == "histogram" {
				return m, suf == "_bucket", true
			}
		}
	}
	if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return contractMetric{typ: "any"}, false, true
	}
	return contractMetric{}, false, false
}

// matcher is one label matcher of a selector.
type matcher struct {
	label, op, value string
}

// selectorRef is one vector selector found in a PromQL expression.
type selectorRef struct {
	name     string
	matchers []matcher
	rng      string // the [range] that follows, "" for an instant vector
}

// parsedExpr is what checkPromQL extracts from an expression.
type parsedExpr struct {
	selectors []selectorRef
	grouping  []string // labels of by/without/on/ignoring clauses
	functions []string
}

var (
	knownFunctions = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "count": true, "topk": true, "bottomk": true, "quantile": true,
		"rate": true, "irate": true, "increase": true, "delta": true, "deriv": true, "resets": true, "changes": true,
		"max_over_time": true, "min_over_time": true, "avg_over_time": true, "sum_over_time": true, "count_over_time": true, "last_over_time": true,
		"histogram_quantile": true, "vector": true, "scalar": true, "clamp_min": true, "clamp_max": true, "abs": true, "absent": true, "absent_over_time": true,
		"time": true, "timestamp": true, "label_replace": true,
	}
	groupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	otherKeywords    = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
	identRE          = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	matcherRE        = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)`)
)

// parsePromQL is a small PromQL scanner, enough for the expressions this
// package ships: it finds every selector with its matchers and range,
// every grouping label and every function, and rejects anything it does
// not understand (so a typo cannot hide as an unknown token). Grafana
// macros ($__rate_interval, $instance) are allowed in ranges and matcher
// values only.
func parsePromQL(expr string) (parsedExpr, error) {
	var p parsedExpr
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return p, fmt.Errorf("unterminated string at %d", i)
			}
			i = j + 1
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return p, fmt.Errorf("unterminated range at %d", i)
			}
			if len(p.selectors) == 0 || p.selectors[len(p.selectors)-1].rng != "" {
				return p, fmt.Errorf("range %q at %d follows no selector", s[i:i+j+1], i)
			}
			p.selectors[len(p.selectors)-1].rng = s[i+1 : i+j]
			i += j + 1
		case c == '{':
			return p, fmt.Errorf("selector without a metric name at %d", i)
		case identRE.MatchString(s[i:]):
			id := identRE.FindString(s[i:])
			i += len(id)
			rest := strings.TrimLeft(s[i:], " \t\n\r")
			switch {
			case groupingKeywords[id]:
				if !strings.HasPrefix(rest, "(") {
					continue // group_left without labels
				}
				end := strings.IndexByte(rest, ')')
				if end < 0 {
					return p, fmt.Errorf("unterminated %s clause", id)
				}
				for _, l := range strings.Split(rest[1:end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						p.grouping = append(p.grouping, l)
					}
				}
				i = len(s) - len(rest) + end + 1
			case otherKeywords[id]:
			case knownFunctions[id] && (strings.HasPrefix(rest, "(") || strings.HasPrefix(rest, "by") || strings.HasPrefix(rest, "without")):
				p.functions = append(p.functions, id)
			case strings.HasPrefix(rest, "("):
				return p, fmt.Errorf("unknown function %q", id)
			default:
				sel := selectorRef{name: id}
				if strings.HasPrefix(rest, "{") {
					i = len(s) - len(rest) + 1
					end := strings.IndexByte(s[i:], '}')
					if end < 0 {
						return p, fmt.Errorf("unterminated matchers of %s", id)
					}
					body := s[i : i+end]
					for strings.TrimSpace(body) != "" {
						m := matcherRE.FindStringSubmatch(body)
						if m == nil {
							return p, fmt.Errorf("bad matchers %q of %s", s[i:i+end], id)
						}
						sel.matchers = append(sel.matchers, matcher{label: m[1], op: m[2], value: m[3]})
						body = body[len(m[0]):]
					}
					i += end + 1
				}
				p.selectors = append(p.selectors, sel)
			}
		case strings.ContainsRune("()+-*/^%<>=!,", rune(c)):
			i++
		default:
			return p, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return p, nil
}

// checkContract checks an expression's selectors, matchers and grouping
// labels against the contract; it returns the problems found.
func checkContract(p parsedExpr) []string {
	var errs []string
	seenLabels := map[string]bool{"instance": true, "job": true}
	for _, sel := range p.selectors {
		m, bucket, ok := lookupMetric(sel.name)
		if !ok {
			errs = append(errs, fmt.Sprintf("metric %s is not in the contract", sel.name))
			continue
		}
		if bucket {
			seenLabels["le"] = true
		}
		for l := range m.labels {
			seenLabels[l] = true
		}
		if m.typ == "any" {
			continue
		}
		for _, mt := range sel.matchers {
			if mt.label == "instance" || mt.label == "job" || bucket && mt.label == "le" || mt.label == "__name__" {
				continue
			}
			allowed, ok := m.labels[mt.label]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s has no label %s in the contract", sel.name, mt.label))
				continue
			}
			if allowed == nil || mt.op == "!=" || mt.op == "!~" {
				continue
			}
			vals := []string{mt.value}
			if mt.op == "=~" {
				vals = strings.Split(mt.value, "|")
			}
			for _, v := range vals {
				if !contains(allowed, v) {
					errs = append(errs, fmt.Sprintf("%s{%s%s%q}: %q is not a contract value of %s (%v)", sel.name, mt.label, mt.op, mt.value, v, mt.label, allowed))
				}
			}
		}
	}
	for _, g := range p.grouping {
		if !seenLabels[g] {
			errs = append(errs, fmt.Sprintf("grouping label %s belongs to none of the expression's metrics", g))
		}
	}
	return errs
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
