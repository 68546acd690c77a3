package audit

import (
	"cmp"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"

	"sipvigil/telemetry/evidence"
)

// Names from docs/tracing.md. They mirror the constants of package
// telemetry/tracing (which writes the spans) without depending on it;
// tracing.TestAuditReadsSpansBack proves the two agree.
const (
	evIn        = "sip.in"
	evOut       = "sip.out"
	evViolation = "sip.order_violation"

	attrCallID    = "sip.call_id"
	attrMethod    = "sip.method"
	attrStatus    = "sip.status_code"
	attrCSeq      = "sip.cseq"
	attrFromTag   = "sip.from.tag"
	attrTransport = "network.transport"
	attrPeerAddr  = "network.peer.address"
	attrPeerPort  = "network.peer.port"
	attrTxnKind   = "sipvigil.txn.kind"
	attrMsgsTotal = "sipvigil.msgs.total"

	attrMsgIndex = "sipvigil.msg.index"
	attrRelays   = "sipvigil.msg.relays"
	attrRetrans  = "sipvigil.msg.retransmission"
	attrTSSource = "sipvigil.ts.source"
	attrMono     = "sipvigil.mono_ns"
	attrUserMono = "sipvigil.user.mono_ns"

	attrQueueWait = "sipvigil.queue.wait_ns"

	attrInstanceID = "service.instance.id"
	attrHostName   = "host.name"

	tsKernel = "kernel"
)

// OTLP span kinds (the enum values used by OTLP JSON).
const (
	KindInternal = 1
	KindServer   = 2
)

// CallTraceID is the trace ID (32 lowercase hex digits) the proxy derives
// from a Call-ID: the first 16 bytes of SHA-256("sipvigil/call-id\x00" +
// Call-ID). It lets `audit --call` find a call without any index on
// Call-IDs, including when the proxy redacts them.
func CallTraceID(callID string) string {
	id := evidence.TraceID(callID)
	return hex.EncodeToString(id[:])
}

// Span is one exported span, decoded from whatever carried it.
type Span struct {
	// TraceID and SpanID are lowercase hex (32 and 16 digits).
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          int // OTLP enum: KindServer, KindInternal, ...
	Start, End                    time.Time
	Attrs                         Attrs
	Events                        []Event
	Resource                      Resource
	StatusCode                    int // OTLP enum: 0 unset, 1 ok, 2 error
	StatusMessage                 string
	// DroppedEvents is how many events the SDK dropped (span limits): a
	// transaction that lost message events cannot be fully checked.
	DroppedEvents int
}

// Event is one span event.
type Event struct {
	Name  string
	Time  time.Time
	Attrs Attrs
}

// Resource is the resource a span was exported under.
type Resource struct {
	Attrs Attrs
}

// Instance says which proxy process wrote a span.
func (r Resource) Instance() Instance {
	return Instance{Host: r.Attrs.Str(attrHostName), ID: r.Attrs.Str(attrInstanceID)}
}

// Instance identifies one proxy process. Monotonic timestamps are
// comparable only within one.
type Instance struct {
	Host string `json:"host_name"`
	ID   string `json:"service_instance_id"`
}

// String names the instance compactly: the instance ID already starts
// with the host name in the default "<hostname>/<pid>" form.
func (i Instance) String() string {
	switch {
	case i.Host == "" && i.ID == "":
		return "(unknown instance)"
	case i.ID == "":
		return i.Host
	case i.Host == "" || strings.HasPrefix(i.ID, i.Host+"/"):
		return i.ID
	}
	return i.ID + " on " + i.Host
}

func (i Instance) compare(j Instance) int {
	return cmp.Or(strings.Compare(i.Host, j.Host), strings.Compare(i.ID, j.ID))
}

// Attrs holds attribute values as decoded: string, int64, float64, bool,
// or for arrays and maps their JSON text as a string.
type Attrs map[string]any

// Str returns a string attribute, or "" when absent or not a string.
func (a Attrs) Str(key string) string {
	s, _ := a[key].(string)
	return s
}

// Int returns an integer attribute. Backends disagree on how they carry
// integers (OTLP JSON uses a decimal string, some re-encode as a number or
// a double), so any integral representation is accepted.
func (a Attrs) Int(key string) (int64, bool) {
	switch v := a[key].(type) {
	case int64:
		return v, true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v), true
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

// Bool returns a boolean attribute, false when absent.
func (a Attrs) Bool(key string) bool {
	switch v := a[key].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

type spanKey struct{ trace, span string }

// SpanSet merges spans that arrive more than once (overlapping search
// windows, the same file read twice, a trace fetched again after more of
// it was exported).
type SpanSet struct {
	index map[spanKey]int
	spans []Span
}

// Add adds s, or, when a span with the same trace and span ID is already
// there, keeps whichever copy carries more events.
func (ss *SpanSet) Add(s Span) {
	if ss.index == nil {
		ss.index = make(map[spanKey]int)
	}
	k := spanKey{s.TraceID, s.SpanID}
	if i, ok := ss.index[k]; ok {
		if len(s.Events) > len(ss.spans[i].Events) {
			ss.spans[i] = s
		}
		return
	}
	ss.index[k] = len(ss.spans)
	ss.spans = append(ss.spans, s)
}

// Len is the number of distinct spans.
func (ss *SpanSet) Len() int { return len(ss.spans) }

// Spans returns the distinct spans in the order first added. The slice
// is shared with the set.
func (ss *SpanSet) Spans() []Span { return ss.spans }
