package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Ladder draws a call as text, one line per message: time since the
// call's first message (ms, µs precision), gap to the previous line,
// direction with the peer, label, CSeq, timestamp source (K kernel, U
// user), flags (rtx for a retransmission) and the numbers of the
// violations the message takes part in, which are listed at the end.
//
// Each instance gets its own section, ordered and timed by its monotonic
// clock. Monotonic clocks of two instances are not comparable, so a
// section starts at the wall-clock offset of its first message from the
// call's first message: exact within a section, only as good as the
// hosts' clock sync between sections.
func Ladder(c *Call) string {
	var b strings.Builder
	callID := c.CallID
	if callID == "" {
		callID = "(redacted)"
	}
	fmt.Fprintf(&b, "call %s  Call-ID %s\n", c.TraceID, callID)

	type msgKey struct {
		span  string
		index int
	}
	marks := make(map[msgKey][]int)
	for n, v := range c.Violations {
		for _, f := range []ForwardRef{v.First, v.Second} {
			for _, idx := range []int{f.InIndex, f.OutIndex} {
				k := msgKey{f.SpanID, idx}
				if l := marks[k]; len(l) == 0 || l[len(l)-1] != n+1 {
					marks[k] = append(l, n+1)
				}
			}
		}
	}

	keys := timeKeys(c.Messages)
	var callStart time.Time
	for i := range c.Messages {
		if t := c.Messages[i].Time; i == 0 || t.Before(callStart) {
			callStart = t
		}
	}
	var rows [][]string
	flush := func() {
		writeColumns(&b, rows, []bool{true, true, false, false, false, false, false})
		rows = rows[:0]
	}
	var first, prev int64
	for i := range c.Messages {
		m := &c.Messages[i]
		if i == 0 || m.Instance != c.Messages[i-1].Instance {
			flush()
			fmt.Fprintf(&b, "\ninstance %s, first message at %s\n", m.Instance, m.Time.UTC().Format(time.RFC3339Nano))
			rows = append(rows, []string{"ms", "gap", "", "message", "cseq", "ts", ""})
			// first is where the section's clock reads the call's start.
			first, prev = keys[i]-int64(m.Time.Sub(callStart)), keys[i]
		}
		peer := m.Peer
		if peer == "" {
			peer = "?"
		}
		dir := peer + " -> [proxy]"
		if m.Out {
			dir = "[proxy] -> " + peer
		}
		src := "U"
		if m.Kernel {
			src = "K"
		}
		var flags []string
		if m.Retransmission {
			flags = append(flags, "rtx")
		}
		if ns := marks[msgKey{m.SpanID, m.Index}]; len(ns) > 0 {
			var s strings.Builder
			s.WriteString("<-")
			for _, n := range ns {
				fmt.Fprintf(&s, " [%d]", n)
			}
			flags = append(flags, s.String())
		}
		rows = append(rows, []string{
			fmtMs(keys[i] - first), "+" + fmtMs(keys[i]-prev), dir, m.Label(),
			strconv.FormatInt(m.CSeq, 10) + " " + m.Method, src, strings.Join(flags, " "),
		})
		prev = keys[i]
	}
	flush()
	if len(c.Violations) > 0 {
		b.WriteString("\nviolations:\n")
		for n, v := range c.Violations {
			fmt.Fprintf(&b, "  [%d] %s: %s (instance %s)\n", n+1, v.Kind, v.Detail, v.Instance)
		}
	}
	return b.String()
}

// writeColumns writes rows as space-separated columns, right-aligned
// where right says so, without trailing blanks.
func writeColumns(b *strings.Builder, rows [][]string, right []bool) {
	var width []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, cell := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if right[i] {
				line.WriteString(pad + cell)
			} else {
				line.WriteString(cell + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
}

// fmtMs formats nanoseconds as milliseconds with microsecond precision.
func fmtMs(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64)
}
