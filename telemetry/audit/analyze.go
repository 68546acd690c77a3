package audit

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"sipvigil/telemetry/order"
)

// Report is the outcome of an audit. Field names in JSON are stable.
type Report struct {
	Calls        int `json:"calls"`
	Transactions int `json:"transactions"`
	Messages     int `json:"messages"`
	// KernelMessages carry a kernel timestamp; KernelSharePct is their
	// share of Messages in percent (0 when there are no messages).
	KernelMessages   int            `json:"kernel_messages"`
	KernelSharePct   float64        `json:"kernel_share_pct"`
	ViolationCount   int            `json:"violation_count"`
	ViolationsByKind map[string]int `json:"violations_by_kind"`
	// ProxyReported counts the proxy's own sip.order_violation events,
	// shown next to the recomputed count and never used for it: the two
	// disagreeing means one of them has a bug.
	ProxyReported int `json:"proxy_reported_violations"`
	// QueueWait is over the queue-wait spans' sipvigil.queue.wait_ns.
	QueueWait Stats `json:"queue_wait_ns"`
	// ProxyLatency is Out-In of the forwards whose inbound and outbound
	// messages both carry kernel timestamps: wire to wire through the
	// proxy, with the sockets' buffering included.
	ProxyLatency Stats      `json:"proxy_latency_kernel_ns"`
	Instances    []Instance `json:"instances"`
	// UnpairedForwards are outbound relays whose inbound message, or
	// either monotonic timestamp, is missing from the span (events
	// dropped by span limits): they could not be checked.
	UnpairedForwards int `json:"unpaired_forwards"`
	// IncompleteSpans are transaction spans that lost message events
	// (the SDK's span limits): fewer sip.in/sip.out events than their
	// sipvigil.msgs.total, or a droppedEventsCount.
	IncompleteSpans int         `json:"incomplete_spans"`
	Violations      []Violation `json:"violations"`
	// Notes are caveats about the input added by the caller (e.g. a
	// search window that stayed full), printed with the summary.
	Notes []string `json:"notes,omitempty"`

	// Traces are the analysed calls, in trace ID order.
	Traces []*Call `json:"-"`
}

// Call returns the call with the given trace ID, or nil.
func (r *Report) Call(traceID string) *Call {
	for _, c := range r.Traces {
		if c.TraceID == traceID {
			return c
		}
	}
	return nil
}

// ViolatingCalls returns the calls with at least one violation.
func (r *Report) ViolatingCalls() []*Call {
	var out []*Call
	for _, c := range r.Traces {
		if len(c.Violations) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Stats summarises a set of nanosecond values. Percentiles are
// nearest-rank: the value at rank ceil(p/100 * Count) of the sorted
// values. All zero when Count is 0.
type Stats struct {
	Count int   `json:"count"`
	Min   int64 `json:"min"`
	P50   int64 `json:"p50"`
	P99   int64 `json:"p99"`
	Max   int64 `json:"max"`
}

func newStats(v []int64) Stats {
	if len(v) == 0 {
		return Stats{}
	}
	slices.Sort(v)
	return Stats{
		Count: len(v),
		Min:   v[0],
		P50:   nearestRank(v, 50),
		P99:   nearestRank(v, 99),
		Max:   v[len(v)-1],
	}
}

// nearestRank returns the p-th percentile of sorted v by the
// nearest-rank method.
func nearestRank(sorted []int64, p int) int64 {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// Call is one SIP call (one trace) as the audit rebuilt it.
type Call struct {
	TraceID string `json:"trace_id"`
	// CallID is the sip.call_id attribute as exported: the Call-ID, its
	// "sha256:" hash, or empty when redaction drops it.
	CallID string `json:"call_id"`
	// Messages are sorted per instance (instances in the order of their
	// first message), then by monotonic time within an instance.
	Messages   []Message   `json:"messages"`
	Violations []Violation `json:"violations"`
}

// Message is one sip.in or sip.out event.
type Message struct {
	SpanID   string   `json:"span_id"`
	Txn      string   `json:"transaction"` // the span's name, e.g. INVITE
	Instance Instance `json:"instance"`
	Index    int      `json:"index"` // sipvigil.msg.index
	Out      bool     `json:"out"`
	Method   string   `json:"method"`           // request method or CSeq method
	Status   int      `json:"status,omitempty"` // 0 for a request
	CSeq     int64    `json:"cseq"`
	Peer     string   `json:"peer"` // host:port of the other end
	// Transport is network.transport of the message (udp, tcp).
	Transport string `json:"transport,omitempty"`
	// Time is the event timestamp (wall clock), for display only.
	Time time.Time `json:"time"`
	// Mono is sipvigil.mono_ns; HasMono is false when it is missing.
	Mono    int64 `json:"mono_ns,omitempty"`
	HasMono bool  `json:"-"`
	Kernel  bool  `json:"kernel"`
	// UserMono is sipvigil.user.mono_ns: the proxy's own time of the
	// message, compared instead of kernel times when only one side of a
	// pair is kernel-stamped (see order.Forward).
	UserMono       int64 `json:"user_mono_ns,omitempty"`
	Relays         int   `json:"relays,omitempty"`
	Retransmission bool  `json:"retransmission,omitempty"`
}

// Label names the message as a ladder does: "INVITE" or "180".
func (m *Message) Label() string {
	if m.Status != 0 {
		return strconv.Itoa(m.Status)
	}
	return m.Method
}

// Violation is one ordering violation found by the audit.
type Violation struct {
	TraceID  string   `json:"trace_id"`
	CallID   string   `json:"call_id"`
	Kind     string   `json:"kind"`
	Detail   string   `json:"detail"`
	Instance Instance `json:"instance"`
	// First should have left first; Second left before it.
	First  ForwardRef `json:"first"`
	Second ForwardRef `json:"second"`
}

// ForwardRef names one forward of a violation: the inbound message and
// the outbound message that relayed it.
type ForwardRef struct {
	SpanID   string `json:"span_id"`
	Label    string `json:"label"`
	Method   string `json:"method"`
	CSeq     int64  `json:"cseq"`
	InIndex  int    `json:"in_index"`
	OutIndex int    `json:"out_index"`
	InMono   int64  `json:"in_mono_ns"`
	OutMono  int64  `json:"out_mono_ns"`
}

// forward is a relayed message with the inbound message it relays.
type forward struct {
	in, out *Message
}

// sideKey is one side of one dialog on one instance: requests sharing it
// must leave in the order they arrived.
type sideKey struct {
	callID, fromTag string
	inst            Instance
}

// Analyze groups spans into calls by trace ID, rebuilds every
// transaction's messages and forwards from its message events and checks
// them with package order. Duplicate spans are merged first, so spans of
// one call may come in any order and from several fetches.
func Analyze(spans []Span) Report {
	// Merge duplicates in place (no copy of the spans): the copy with
	// more events wins, as in SpanSet.
	index := make(map[spanKey]*Span, len(spans))
	byTrace := make(map[string][]*Span)
	for i := range spans {
		s := &spans[i]
		k := spanKey{s.TraceID, s.SpanID}
		if prev, ok := index[k]; ok {
			if len(s.Events) > len(prev.Events) {
				index[k] = s
				l := byTrace[s.TraceID]
				l[slices.Index(l, prev)] = s
			}
			continue
		}
		index[k] = s
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}

	r := Report{
		ViolationsByKind: make(map[string]int, len(order.Kinds)),
		Violations:       []Violation{},
		Instances:        []Instance{},
	}
	for _, k := range order.Kinds {
		r.ViolationsByKind[k] = 0
	}
	var a analysis
	a.instances = make(map[Instance]bool)
	for _, traceID := range slices.Sorted(maps.Keys(byTrace)) {
		c := a.call(traceID, byTrace[traceID], &r)
		r.Traces = append(r.Traces, c)
		for _, v := range c.Violations {
			r.ViolationsByKind[v.Kind]++
		}
		r.Violations = append(r.Violations, c.Violations...)
	}
	r.Calls = len(r.Traces)
	r.ViolationCount = len(r.Violations)
	if r.Messages > 0 {
		r.KernelSharePct = 100 * float64(r.KernelMessages) / float64(r.Messages)
	}
	r.QueueWait = newStats(a.waits)
	r.ProxyLatency = newStats(a.latencies)
	for inst := range a.instances {
		r.Instances = append(r.Instances, inst)
	}
	slices.SortFunc(r.Instances, Instance.compare)
	return r
}

// analysis accumulates what spans across calls contribute to.
type analysis struct {
	waits, latencies []int64
	instances        map[Instance]bool
}

// isTxnSpan: a transaction span carries sipvigil.txn.kind; message events
// are enough too, so that spans from a writer that lost the attribute are
// still checked.
func isTxnSpan(s *Span) bool {
	if _, ok := s.Attrs[attrTxnKind]; ok {
		return true
	}
	for _, e := range s.Events {
		if e.Name == evIn || e.Name == evOut {
			return true
		}
	}
	return false
}

func (a *analysis) call(traceID string, spans []*Span, r *Report) *Call {
	c := &Call{TraceID: traceID, Messages: []Message{}, Violations: []Violation{}}
	// Spans in a stable order whatever order they arrived in.
	slices.SortFunc(spans, func(x, y *Span) int {
		return cmp.Or(x.Start.Compare(y.Start), cmp.Compare(x.SpanID, y.SpanID))
	})
	for _, s := range spans {
		if c.CallID == "" {
			c.CallID = s.Attrs.Str(attrCallID)
		}
	}
	sides := make(map[sideKey][]forward)
	var sideOrder []sideKey
	for _, s := range spans {
		inst := s.Resource.Instance()
		if w, ok := s.Attrs.Int(attrQueueWait); ok {
			a.waits = append(a.waits, w)
			a.instances[inst] = true
		}
		if !isTxnSpan(s) {
			continue
		}
		a.instances[inst] = true
		r.Transactions++
		msgs := messages(s, inst)
		if total, ok := s.Attrs.Int(attrMsgsTotal); s.DroppedEvents > 0 || ok && total > int64(len(msgs)) {
			r.IncompleteSpans++
		}
		for _, e := range s.Events {
			if e.Name == evViolation {
				r.ProxyReported++
			}
		}
		r.Messages += len(msgs)
		for i := range msgs {
			if msgs[i].Kernel {
				r.KernelMessages++
			}
		}
		fws, unpaired := forwards(msgs)
		r.UnpairedForwards += unpaired
		var responses []order.Forward
		var firstRequest *forward
		for i := range fws {
			f := &fws[i]
			if f.in.Kernel && f.out.Kernel {
				a.latencies = append(a.latencies, f.out.Mono-f.in.Mono)
			}
			if f.out.Status != 0 {
				responses = append(responses, orderForward(f, i))
			} else if firstRequest == nil || f.out.Index < firstRequest.out.Index {
				firstRequest = f
			}
		}
		for _, v := range order.Responses(responses) {
			c.Violations = append(c.Violations, violation(c, inst, v, fws))
		}
		if firstRequest != nil {
			k := sideKey{callID: s.Attrs.Str(attrCallID), fromTag: s.Attrs.Str(attrFromTag), inst: inst}
			if _, ok := sides[k]; !ok {
				sideOrder = append(sideOrder, k)
			}
			sides[k] = append(sides[k], *firstRequest)
		}
		c.Messages = append(c.Messages, msgs...)
	}
	for _, k := range sideOrder {
		fws := sides[k]
		of := make([]order.Forward, len(fws))
		for i := range fws {
			of[i] = orderForward(&fws[i], i)
		}
		for _, v := range order.Requests(of) {
			c.Violations = append(c.Violations, violation(c, k.inst, v, fws))
		}
	}
	sortMessages(c.Messages)
	return c
}

// messages rebuilds a transaction's messages from its events, by
// sipvigil.msg.index (the first event wins should an index repeat).
func messages(s *Span, inst Instance) []Message {
	cseq, _ := s.Attrs.Int(attrCSeq)
	seen := make(map[int]bool)
	var out []Message
	for _, e := range s.Events {
		if e.Name != evIn && e.Name != evOut {
			continue
		}
		idx, ok := e.Attrs.Int(attrMsgIndex)
		if !ok || seen[int(idx)] {
			continue
		}
		seen[int(idx)] = true
		status, _ := e.Attrs.Int(attrStatus)
		relays, _ := e.Attrs.Int(attrRelays)
		mono, hasMono := e.Attrs.Int(attrMono)
		userMono, _ := e.Attrs.Int(attrUserMono)
		m := Message{
			UserMono:       userMono,
			SpanID:         s.SpanID,
			Txn:            s.Name,
			Instance:       inst,
			Index:          int(idx),
			Out:            e.Name == evOut,
			Method:         e.Attrs.Str(attrMethod),
			Status:         int(status),
			CSeq:           cseq,
			Time:           e.Time,
			Mono:           mono,
			HasMono:        hasMono,
			Kernel:         e.Attrs.Str(attrTSSource) == tsKernel,
			Relays:         int(relays),
			Retransmission: e.Attrs.Bool(attrRetrans),
			Transport:      e.Attrs.Str(attrTransport),
		}
		if m.Method == "" {
			m.Method = s.Attrs.Str(attrMethod)
		}
		if addr := e.Attrs.Str(attrPeerAddr); addr != "" {
			m.Peer = addr
			if port, ok := e.Attrs.Int(attrPeerPort); ok {
				m.Peer = net.JoinHostPort(addr, strconv.FormatInt(port, 10))
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y Message) int { return cmp.Compare(x.Index, y.Index) })
	return out
}

// forwards pairs every relayed outbound message (relays > 0, not a
// retransmission) with the inbound message it relays. unpaired counts
// relays that cannot be checked: the inbound message or a monotonic
// timestamp is missing.
func forwards(msgs []Message) (fws []forward, unpaired int) {
	byIndex := make(map[int]*Message, len(msgs))
	for i := range msgs {
		byIndex[msgs[i].Index] = &msgs[i]
	}
	for i := range msgs {
		out := &msgs[i]
		if !out.Out || out.Relays <= 0 || out.Retransmission {
			continue
		}
		in := byIndex[out.Relays-1]
		if in == nil || in.Out || !in.HasMono || !out.HasMono {
			unpaired++
			continue
		}
		fws = append(fws, forward{in: in, out: out})
	}
	return fws, unpaired
}

// orderForward converts f for package order; Ref is its index in the
// caller's slice of forwards.
func orderForward(f *forward, ref int) order.Forward {
	return order.Forward{
		In:      f.in.Mono,
		Out:     f.out.Mono,
		Kernel:  f.in.Kernel && f.out.Kernel,
		UserIn:  f.in.UserMono,
		UserOut: f.out.UserMono,
		Method:  f.out.Method,
		Status:  f.out.Status,
		CSeq:    uint32(f.out.CSeq),
		Ref:     ref,
	}
}

func violation(c *Call, inst Instance, v order.Violation, fws []forward) Violation {
	return Violation{
		TraceID:  c.TraceID,
		CallID:   c.CallID,
		Kind:     v.Kind,
		Detail:   describe(v),
		Instance: inst,
		First:    forwardRef(&fws[v.First.Ref]),
		Second:   forwardRef(&fws[v.Second.Ref]),
	}
}

func forwardRef(f *forward) ForwardRef {
	return ForwardRef{
		SpanID:   f.out.SpanID,
		Label:    f.out.Label(),
		Method:   f.out.Method,
		CSeq:     f.out.CSeq,
		InIndex:  f.in.Index,
		OutIndex: f.out.Index,
		InMono:   f.in.Mono,
		OutMono:  f.out.Mono,
	}
}

// sortMessages orders a call's messages for a ladder: grouped by
// instance (instances in the order of their first message on the wall
// clock), then by time within the instance (see timeKeys).
func sortMessages(msgs []Message) {
	first := make(map[Instance]time.Time)
	for i := range msgs {
		m := &msgs[i]
		if t, ok := first[m.Instance]; !ok || m.Time.Before(t) {
			first[m.Instance] = m.Time
		}
	}
	keys := timeKeys(msgs)
	idx := make([]int, len(msgs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		x, y := &msgs[i], &msgs[j]
		if x.Instance != y.Instance {
			return cmp.Or(first[x.Instance].Compare(first[y.Instance]), x.Instance.compare(y.Instance))
		}
		return cmp.Or(
			cmp.Compare(keys[i], keys[j]),
			x.Time.Compare(y.Time),
			cmp.Compare(x.SpanID, y.SpanID),
			cmp.Compare(x.Index, y.Index),
		)
	})
	sorted := make([]Message, len(msgs))
	for i, j := range idx {
		sorted[i] = msgs[j]
	}
	copy(msgs, sorted)
}

// timeKeys returns each message's time in nanoseconds on its instance's
// monotonic clock: sipvigil.mono_ns, or for a message without it, its
// wall time shifted by the instance's wall-to-monotonic offset (taken
// from the instance's first message that has both). Keys of different
// instances are not comparable.
func timeKeys(msgs []Message) []int64 {
	offset := make(map[Instance]int64)
	for i := range msgs {
		m := &msgs[i]
		if _, ok := offset[m.Instance]; !ok && m.HasMono {
			offset[m.Instance] = m.Time.UnixNano() - m.Mono
		}
	}
	keys := make([]int64, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.HasMono {
			keys[i] = m.Mono
		} else {
			keys[i] = m.Time.UnixNano() - offset[m.Instance]
		}
	}
	return keys
}

// describe explains a violation in microseconds. (order.Violation.String
// is meant for the same, but prints the departure gap of a reorder as a
// negative "after".)
func describe(v order.Violation) string {
	first, second := v.First.Label(), v.Second.Label()
	if v.First.CSeq != v.Second.CSeq {
		first = fmt.Sprintf("%s (CSeq %d)", first, v.First.CSeq)
		second = fmt.Sprintf("%s (CSeq %d)", second, v.Second.CSeq)
	}
	if v.Kind == order.ProvisionalAfterFinal {
		return fmt.Sprintf("%s left %s ms after the final %s", second, fmtMs(v.Second.Out-v.First.Out), first)
	}
	return fmt.Sprintf("%s arrived %s ms before %s but left %s ms after it",
		first, fmtMs(v.Second.In-v.First.In), second, fmtMs(v.First.Out-v.Second.Out))
}
