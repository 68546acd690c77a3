package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sipvigil/telemetry/order"
)

// WriteText writes the summary table, then the ladder of every call with
// a violation.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "calls\t%d\n", r.Calls)
	fmt.Fprintf(tw, "transactions\t%d\n", r.Transactions)
	fmt.Fprintf(tw, "messages\t%d\n", r.Messages)
	fmt.Fprintf(tw, "kernel timestamps\t%.1f%% (%d of %d messages)\n", r.KernelSharePct, r.KernelMessages, r.Messages)
	fmt.Fprintf(tw, "violations\t%d (the proxy itself reported %d)\n", r.ViolationCount, r.ProxyReported)
	for _, k := range order.Kinds {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.ViolationsByKind[k])
	}
	fmt.Fprintf(tw, "queue wait\t%s\n", r.QueueWait.text(true))
	fmt.Fprintf(tw, "proxy latency kernel-to-kernel\t%s\n", r.ProxyLatency.text(false))
	if r.UnpairedForwards > 0 {
		fmt.Fprintf(tw, "unchecked forwards\t%d (inbound message or timestamp missing)\n", r.UnpairedForwards)
	}
	if r.IncompleteSpans > 0 {
		fmt.Fprintf(tw, "spans missing events\t%d (span limits dropped message events)\n", r.IncompleteSpans)
	}
	names := make([]string, len(r.Instances))
	for i, inst := range r.Instances {
		names[i] = inst.String()
	}
	fmt.Fprintf(tw, "instances\t%d %s\n", len(r.Instances), strings.Join(names, ", "))
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.ViolatingCalls() {
		b.WriteString("\n")
		b.WriteString(Ladder(c))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// text formats s for the summary table.
func (s Stats) text(withMin bool) string {
	if s.Count == 0 {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d  ", s.Count)
	if withMin {
		fmt.Fprintf(&b, "min %s ms  ", fmtMs(s.Min))
	}
	fmt.Fprintf(&b, "p50 %s ms  p99 %s ms  max %s ms", fmtMs(s.P50), fmtMs(s.P99), fmtMs(s.Max))
	return b.String()
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
