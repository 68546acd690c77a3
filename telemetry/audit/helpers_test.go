package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hand-made traces, shaped like the proxy's (docs/tracing.md).

var wallBase = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

var (
	instA = Instance{Host: "sip-a", ID: "sip-a/100"}
	instB = Instance{Host: "sip-b", ID: "sip-b/200"}
)

// monoOrigin gives each instance its own monotonic clock origin, as on
// two hosts: wall = wallBase + (mono - origin).
func monoOrigin(i Instance) int64 {
	if i == instB {
		return 9_000_000_000_000
	}
	return 1_000_000_000
}

// msg is one message event to put on a transaction span. at is µs after
// the instance's monotonic origin.
type msg struct {
	out            bool
	method         string
	status         int
	relays         int
	rtx            bool
	at             int64
	user           bool // user-space timestamp instead of kernel
	noMono         bool
	peer           string
	violationEvent bool // a sip.order_violation event instead of a message
}

func in(method string, status int, at int64, peer string) msg {
	return msg{method: method, status: status, at: at, peer: peer}
}

func out(method string, status, relays int, at int64, peer string) msg {
	return msg{out: true, method: method, status: status, relays: relays, at: at, peer: peer}
}

type txnOpts struct {
	trace, span string
	inst        Instance
	name        string // span name; the method by default
	method      string
	cseq        int
	callID      string
	fromTag     string
	noCallID    bool
}

func resource(i Instance) Resource {
	return Resource{Attrs: Attrs{"service.name": "sipvigil", "host.name": i.Host, "service.instance.id": i.ID}}
}

func txnSpan(o txnOpts, msgs ...msg) Span {
	if o.name == "" {
		o.name = o.method
	}
	if o.callID == "" && !o.noCallID {
		o.callID = "call-" + o.trace[:4]
	}
	s := Span{
		TraceID: o.trace, SpanID: o.span, Name: o.name, Kind: KindServer,
		Attrs: Attrs{
			"sip.method": o.method, "sip.cseq": int64(o.cseq), "sip.from.tag": o.fromTag,
			"sipvigil.txn.kind": "server",
		},
		Resource: resource(o.inst),
	}
	if !o.noCallID {
		s.Attrs["sip.call_id"] = o.callID
	}
	origin := monoOrigin(o.inst)
	idx := 0
	for _, m := range msgs {
		mono := origin + m.at*1000
		wall := wallBase.Add(time.Duration(mono - origin))
		if m.violationEvent {
			s.Events = append(s.Events, Event{Name: "sip.order_violation", Time: wall, Attrs: Attrs{"sipvigil.violation.kind": "response_reorder"}})
			continue
		}
		e := Event{Name: "sip.in", Time: wall, Attrs: Attrs{
			"sipvigil.msg.index": int64(idx), "sip.method": m.method,
			"sipvigil.ts.source": "kernel", "network.transport": "udp",
		}}
		idx++
		if m.out {
			e.Name = "sip.out"
			e.Attrs["sipvigil.msg.relays"] = int64(m.relays)
		}
		if m.status != 0 {
			e.Attrs["sip.status_code"] = int64(m.status)
		}
		if m.rtx {
			e.Attrs["sipvigil.msg.retransmission"] = true
		}
		if m.user {
			e.Attrs["sipvigil.ts.source"] = "user"
		}
		if !m.noMono {
			e.Attrs["sipvigil.mono_ns"] = mono
		}
		if m.peer != "" {
			host, port := splitPeer(m.peer)
			e.Attrs["network.peer.address"] = host
			e.Attrs["network.peer.port"] = port
		}
		s.Events = append(s.Events, e)
		if s.Start.IsZero() || wall.Before(s.Start) {
			s.Start = wall
		}
		if wall.After(s.End) {
			s.End = wall
		}
	}
	return s
}

func splitPeer(p string) (string, int64) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == ':' {
			n, _ := strconv.ParseInt(p[i+1:], 10, 64)
			return strings.Trim(p[:i], "[]"), n
		}
	}
	return p, 0
}

func queueSpan(trace, span, parent string, inst Instance, waitNs int64) Span {
	return Span{
		TraceID: trace, SpanID: span, ParentSpanID: parent, Name: "queue inbound", Kind: KindInternal,
		Start: wallBase, End: wallBase.Add(time.Duration(waitNs)),
		Attrs: Attrs{
			"sipvigil.queue.name": "inbound", "sipvigil.queue.kind": "queue",
			"sipvigil.queue.wait_ns": waitNs, "sipvigil.queue.outcome": "released",
		},
		Resource: resource(inst),
	}
}

const (
	uac = "10.0.0.1:5060"
	uas = "10.0.0.2:5070"
)

// traceHex makes a 32-digit trace ID from a small number.
func traceHex(n int) string { return fmt.Sprintf("%032x", n+0xabc0) }

// spanHex makes a 16-digit span ID.
func spanHex(n int) string { return fmt.Sprintf("%016x", n+1) }

// inviteTxn is an INVITE transaction relayed in order: INVITE, 100
// (generated), 180, 200.
func inviteTxn(trace, span string, inst Instance, cseq int, t0 int64) Span {
	return txnSpan(txnOpts{trace: trace, span: span, inst: inst, method: "INVITE", cseq: cseq, fromTag: "a"},
		in("INVITE", 0, t0, uac),
		out("INVITE", 100, 0, t0+10, uac),
		out("INVITE", 0, 1, t0+40, uas),
		in("INVITE", 180, t0+1000, uas),
		out("INVITE", 180, 4, t0+1030, uac),
		in("INVITE", 200, t0+5000, uas),
		out("INVITE", 200, 6, t0+5030, uac),
	)
}

func ackTxn(trace, span string, inst Instance, cseq int, tin, tout int64) Span {
	return txnSpan(txnOpts{trace: trace, span: span, inst: inst, method: "ACK", cseq: cseq, fromTag: "a"},
		in("ACK", 0, tin, uac),
		out("ACK", 0, 1, tout, uas),
	)
}

// otlpJSON encodes spans as one OTLP JSON TracesData object, the way the
// collector's file exporter does (IDs hex, ints as strings).
func otlpJSON(spans []Span) []byte {
	type kv = map[string]any
	val := func(v any) kv {
		switch v := v.(type) {
		case string:
			return kv{"stringValue": v}
		case int64:
			return kv{"intValue": strconv.FormatInt(v, 10)}
		case bool:
			return kv{"boolValue": v}
		case float64:
			return kv{"doubleValue": v}
		}
		panic(fmt.Sprintf("value %T", v))
	}
	attrList := func(a Attrs) []kv {
		var l []kv
		for k, v := range a {
			l = append(l, kv{"key": k, "value": val(v)})
		}
		return l
	}
	nanos := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return strconv.FormatInt(t.UnixNano(), 10)
	}
	var rss []kv
	for _, s := range spans {
		var evs []kv
		for _, e := range s.Events {
			evs = append(evs, kv{"timeUnixNano": nanos(e.Time), "name": e.Name, "attributes": attrList(e.Attrs)})
		}
		sp := kv{
			"traceId": s.TraceID, "spanId": s.SpanID, "parentSpanId": s.ParentSpanID,
			"name": s.Name, "kind": s.Kind,
			"startTimeUnixNano": nanos(s.Start), "endTimeUnixNano": nanos(s.End),
			"attributes": attrList(s.Attrs), "events": evs, "status": kv{},
		}
		rss = append(rss, kv{
			"resource":   kv{"attributes": attrList(s.Resource.Attrs)},
			"scopeSpans": []kv{{"scope": kv{"name": "sipvigil"}, "spans": []kv{sp}}},
		})
	}
	b, err := json.Marshal(kv{"resourceSpans": rss})
	if err != nil {
		panic(err)
	}
	return b
}
