package tracing

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/evidence"
	"sipvigil/telemetry/order"
)

// This file writes OTLP spans (opentelemetry/proto/trace/v1/trace.proto)
// straight from an evidence.Txn into protobuf wire format. Each span is
// appended as one `spans` field (2) of a ScopeSpans message, so a batch is
// the concatenation of encoded spans and becomes the ScopeSpans' unknown
// fields at upload time (see batch.request). Fields are written in field
// number order with proto3 defaults left out and canonical (shortest)
// varints, which makes the output byte-identical to what the generated
// types' deterministic marshalling produces for the same message (a test
// checks this).

// Wire types.
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtLen     = 2
	wtFixed32 = 5
)

// Wire tags: field number << 3 | wire type, all one byte except flags.
const (
	// ScopeSpans
	tagScopeSpansSpan = 2<<3 | wtLen

	// Span
	tagSpanTraceID  = 1<<3 | wtLen
	tagSpanSpanID   = 2<<3 | wtLen
	tagSpanParentID = 4<<3 | wtLen
	tagSpanName     = 5<<3 | wtLen
	tagSpanKind     = 6<<3 | wtVarint
	tagSpanStart    = 7<<3 | wtFixed64
	tagSpanEnd      = 8<<3 | wtFixed64
	tagSpanAttr     = 9<<3 | wtLen
	tagSpanEvent    = 11<<3 | wtLen
	tagSpanDropEvts = 12<<3 | wtVarint
	tagSpanStatus   = 15<<3 | wtLen
	// tagSpanFlags is field 16, fixed32: a two-byte varint.
	tagSpanFlags                 = 16<<3 | wtFixed32
	tagSpanFlags0, tagSpanFlags1 = tagSpanFlags&0x7f | 0x80, tagSpanFlags >> 7

	// Span.Event
	tagEventTime = 1<<3 | wtFixed64
	tagEventName = 2<<3 | wtLen
	tagEventAttr = 3<<3 | wtLen

	// Status
	tagStatusMessage = 2<<3 | wtLen
	tagStatusCode    = 3<<3 | wtVarint

	// KeyValue and AnyValue
	tagKVKey      = 1<<3 | wtLen
	tagKVValue    = 2<<3 | wtLen
	tagAnyString  = 1<<3 | wtLen
	tagAnyBool    = 2<<3 | wtVarint
	tagAnyInt     = 3<<3 | wtVarint
	spanKindInt   = 1 // SPAN_KIND_INTERNAL
	spanKindSrv   = 2 // SPAN_KIND_SERVER
	statusCodeErr = 2 // STATUS_CODE_ERROR

	// spanFlags: W3C "sampled" in the low byte, and "whether the parent
	// is remote is known" (it is not: every sipvigil span is a root or a
	// local child), as the SDK's OTLP transform writes them.
	spanFlags = 0x01 | 0x100
)

// lenReserve is the room left for a span's or an event's length before
// its body is written: two varint bytes hold up to 16383, which covers an
// event and a typical span. Other lengths shift the body (endLen).
const lenReserve = 2

// encoder holds what encoding reuses between transactions. It is owned by
// whoever holds Exporter.mu.
type encoder struct {
	redact string
	rng    *rand.ChaCha8
	addrs  addrCache
	now    time.Time // lazily set per transaction: stands in for zero times
}

// beginLen appends tag and room for a length, and returns where the length
// goes; the body follows.
func beginLen(b []byte, tag byte) ([]byte, int) {
	b = append(b, tag)
	return append(b, make([]byte, lenReserve)...), len(b)
}

// endLen writes the length of the body that started at pos+lenReserve,
// moving the body when its length does not take exactly lenReserve bytes.
func endLen(b []byte, pos int) []byte {
	start := pos + lenReserve
	n := len(b) - start
	k := protowire.SizeVarint(uint64(n))
	switch {
	case k > lenReserve:
		b = append(b, make([]byte, k-lenReserve)...)
		copy(b[pos+k:], b[start:start+n])
	case k < lenReserve:
		copy(b[pos+k:], b[start:])
		b = b[:pos+k+n]
	}
	protowire.AppendVarint(b[:pos], uint64(n))
	return b
}

// Attribute encoders. tag is tagSpanAttr or tagEventAttr, key a
// keyPrefix. Each computes the KeyValue's size up front, grows b once and
// fills it in place: attributes are most of the bytes, and per-byte
// appends and generic varint calls were most of the time.

// keyPrefix is the constant start of a KeyValue with this key: the key
// field, then the tag of the value field.
func keyPrefix(key string) string {
	b := protowire.AppendVarint([]byte{tagKVKey}, uint64(len(key)))
	b = append(b, key...)
	return string(append(b, tagKVValue))
}

// Key prefixes of docs/tracing.md's attributes.
var (
	kSIPMethod     = keyPrefix(AttrSIPMethod)
	kSIPStatusCode = keyPrefix(AttrSIPStatusCode)
	kSIPCallID     = keyPrefix(AttrSIPCallID)
	kSIPCSeq       = keyPrefix(AttrSIPCSeq)
	kSIPViaBranch  = keyPrefix(AttrSIPViaBranch)
	kSIPFromTag    = keyPrefix(AttrSIPFromTag)

	kNetworkPeerAddress = keyPrefix(AttrNetworkPeerAddress)
	kNetworkPeerPort    = keyPrefix(AttrNetworkPeerPort)
	kServerAddress      = keyPrefix(AttrServerAddress)
	kServerPort         = keyPrefix(AttrServerPort)

	kTxnKind    = keyPrefix(AttrTxnKind)
	kWorker     = keyPrefix(AttrWorker)
	kTSSource   = keyPrefix(AttrTSSource)
	kMsgsTotal  = keyPrefix(AttrMsgsTotal)
	kMsgsKernel = keyPrefix(AttrMsgsKernel)

	kMsgIndex     = keyPrefix(AttrMsgIndex)
	kMsgRelays    = keyPrefix(AttrMsgRelays)
	kMonoNS       = keyPrefix(AttrMonoNS)
	kKernelMonoNS = keyPrefix(AttrKernelMonoNS)
	kUserMonoNS   = keyPrefix(AttrUserMonoNS)
	kPacketID     = keyPrefix(AttrPacketID)

	kQueueName       = keyPrefix(AttrQueueName)
	kQueueKind       = keyPrefix(AttrQueueKind)
	kQueueDelayNS    = keyPrefix(AttrQueueDelayNS)
	kQueueWaitNS     = keyPrefix(AttrQueueWaitNS)
	kQueueOutcome    = keyPrefix(AttrQueueOutcome)
	kWaitStartMonoNS = keyPrefix(AttrWaitStartMonoNS)
	kWaitEndMonoNS   = keyPrefix(AttrWaitEndMonoNS)

	kViolationKind   = keyPrefix(AttrViolationKind)
	kViolationDetail = keyPrefix(AttrViolationDetail)
)

// constKV is a whole encoded attribute with a fixed value, as a span
// attribute and as an event attribute.
type constKV struct{ span, event string }

func newConstKV(key, val string) constKV {
	return constKV{
		span:  string(appendStr(nil, tagSpanAttr, keyPrefix(key), val)),
		event: string(appendStr(nil, tagEventAttr, keyPrefix(key), val)),
	}
}

func newConstBool(key string, val bool) string {
	return string(appendBool(nil, tagEventAttr, keyPrefix(key), val))
}

// Attributes with a value from a small fixed set.
var (
	cTSKernel = newConstKV(AttrTSSource, TSSourceKernel)
	cTSUser   = newConstKV(AttrTSSource, TSSourceUser)
	cUDP      = newConstKV(AttrNetworkTransport, "udp")
	cTCP      = newConstKV(AttrNetworkTransport, "tcp")
	cRetxNo   = newConstBool(AttrMsgRetransmission, false)
	cRetxYes  = newConstBool(AttrMsgRetransmission, true)
)

// validUTF8 replaces invalid UTF-8 in s (a proto3 string must be valid,
// and strict decoders reject the whole request otherwise; the SDK path
// failed to marshal the batch). SIP strings come from the network.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// grow extends b by n bytes, reallocating at most once.
func grow(b []byte, n int) []byte {
	l := len(b)
	if cap(b)-l < n {
		b = slices.Grow(b, n)
	}
	return b[:l+n]
}

// sizeVarint is protowire.SizeVarint, small enough to inline.
func sizeVarint(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// putVarint writes v at the start of d, which has room for it, and
// returns the number of bytes written.
func putVarint(d []byte, v uint64) int {
	i := 0
	for v >= 0x80 {
		d[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	d[i] = byte(v)
	return i + 1
}

// appendHead grows b by the whole KeyValue (tag, its length and body of
// kvLen bytes), writes the tag, the length and the key prefix, and
// returns b and where the value's length goes.
func appendHead(b []byte, tag byte, key string, kvLen int) ([]byte, int) {
	n := len(b)
	b = grow(b, 1+sizeVarint(uint64(kvLen))+kvLen)
	b[n] = tag
	i := n + 1
	i += putVarint(b[i:], uint64(kvLen))
	return b, i + copy(b[i:], key)
}

func appendStr(b []byte, tag byte, key, val string) []byte {
	if val == "" {
		return b
	}
	return appendAnyString(b, tag, key, validUTF8(val))
}

// appendStrBytes is appendStr for a value in a scratch buffer.
func appendStrBytes(b []byte, tag byte, key string, val []byte) []byte {
	return appendAnyString(b, tag, key, val)
}

// appendAnyString writes a string-valued KeyValue; generic so that a
// []byte value is never converted (copied) to a string.
func appendAnyString[T string | []byte](b []byte, tag byte, key string, val T) []byte {
	if len(val) == 0 {
		return b
	}
	anyLen := 1 + sizeVarint(uint64(len(val))) + len(val)
	b, i := appendHead(b, tag, key, len(key)+sizeVarint(uint64(anyLen))+anyLen)
	i += putVarint(b[i:], uint64(anyLen))
	b[i] = tagAnyString
	i++
	i += putVarint(b[i:], uint64(len(val)))
	copy(b[i:], val)
	return b
}

func appendInt(b []byte, tag byte, key string, val int64) []byte {
	u := uint64(val)
	anyLen := 1 + sizeVarint(u) // < 128
	b, i := appendHead(b, tag, key, len(key)+1+anyLen)
	b[i] = byte(anyLen)
	b[i+1] = tagAnyInt
	putVarint(b[i+2:], u)
	return b
}

func appendBool(b []byte, tag byte, key string, val bool) []byte {
	b, i := appendHead(b, tag, key, len(key)+3)
	b[i] = 2
	b[i+1] = tagAnyBool
	b[i+2] = 0
	if val {
		b[i+2] = 1
	}
	return b
}

// transport is the network.transport attribute of an IP protocol, or
// nil.
func transport(proto uint8) *constKV {
	switch proto {
	case observe.ProtoUDP:
		return &cUDP
	case observe.ProtoTCP:
		return &cTCP
	}
	return nil
}

func (e *encoder) appendAddr(b []byte, tag byte, addrKey, portKey string, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return b
	}
	b = appendStr(b, tag, addrKey, e.addrs.str(ap.Addr()))
	return appendInt(b, tag, portKey, int64(ap.Port()))
}

// appendTime writes a fixed64 timestamp. A zero time stands for "now", as
// the SDK's WithTimestamp treated it; times before 1970 clamp to 0.
func (e *encoder) appendTime(b []byte, tag byte, t time.Time) []byte {
	if t.IsZero() {
		if e.now.IsZero() {
			e.now = time.Now()
		}
		t = e.now
	}
	return protowire.AppendFixed64(append(b, tag), uint64(max(0, t.UnixNano())))
}

func appendName(b []byte, a, suffix string) []byte {
	if len(a)+len(suffix) == 0 {
		return b
	}
	a, suffix = validUTF8(a), validUTF8(suffix)
	b = append(b, tagSpanName)
	b = protowire.AppendVarint(b, uint64(len(a)+len(suffix)))
	b = append(b, a...)
	return append(b, suffix...)
}

// appendIDs writes trace_id, span_id and, when parent is not zero,
// parent_span_id.
func appendIDs(b []byte, tid [16]byte, sid, parent [8]byte) []byte {
	b = append(b, tagSpanTraceID, 16)
	b = append(b, tid[:]...)
	b = append(b, tagSpanSpanID, 8)
	b = append(b, sid[:]...)
	if parent != ([8]byte{}) {
		b = append(b, tagSpanParentID, 8)
		b = append(b, parent[:]...)
	}
	return b
}

func appendFlags(b []byte) []byte {
	b = append(b, tagSpanFlags0, tagSpanFlags1)
	return protowire.AppendFixed32(b, spanFlags)
}

// spanID draws a random, non-zero span ID. Span IDs stay random: two
// instances write different spans into the same trace.
func (e *encoder) spanID() [8]byte {
	var id [8]byte
	for id == ([8]byte{}) {
		binary.NativeEndian.PutUint64(id[:], e.rng.Uint64())
	}
	return id
}

// appendTxn appends the spans of one transaction (docs/tracing.md,
// "Spans") to b, each as a ScopeSpans.spans field, and returns b and the
// number of spans.
func (e *encoder) appendTxn(b []byte, t *evidence.Txn, tid [16]byte) ([]byte, int) {
	e.now = time.Time{}
	root := e.spanID()

	b, spanPos := beginLen(b, tagScopeSpansSpan)
	b = appendIDs(b, tid, root, [8]byte{})
	kind := byte(spanKindSrv)
	if t.Kind == observe.TxnStateless {
		b = appendName(b, t.Method, RelaySuffix)
		kind = spanKindInt
	} else {
		b = appendName(b, t.Method, "")
	}
	b = append(b, tagSpanKind, kind)
	b = e.appendTime(b, tagSpanStart, t.Start)
	b = e.appendTime(b, tagSpanEnd, t.End)
	b = e.appendTxnAttrs(b, t)

	events, dropped := 0, 0
	for i := range t.Msgs {
		m := &t.Msgs[i]
		if m.Msg == nil {
			continue
		}
		if events == eventLimit {
			dropped++
			continue
		}
		events++
		name := EventIn
		if m.Dir == observe.Out {
			name = EventOut
		}
		var pos int
		b, pos = beginLen(b, tagSpanEvent)
		b = e.appendTime(b, tagEventTime, m.Wall)
		b = append(b, tagEventName, byte(len(name)))
		b = append(b, name...)
		b = e.appendMsgAttrs(b, i, m)
		b = endLen(b, pos)
	}
	for _, v := range t.Violations {
		if events == eventLimit {
			dropped++
			continue
		}
		events++
		later := v.First
		if v.Second.Out > later.Out {
			later = v.Second
		}
		var pos int
		b, pos = beginLen(b, tagSpanEvent)
		b = e.appendTime(b, tagEventTime, wallAt(t, later.Out))
		b = append(b, tagEventName, byte(len(EventViolation)))
		b = append(b, EventViolation...)
		b = appendStr(b, tagEventAttr, kViolationKind, v.Kind)
		b = appendStr(b, tagEventAttr, kViolationDetail, v.String())
		b = endLen(b, pos)
	}
	if dropped > 0 {
		b = append(b, tagSpanDropEvts)
		b = protowire.AppendVarint(b, uint64(dropped))
	}
	if len(t.Violations) > 0 {
		msg := violationStatus(t.Violations)
		var pos int
		b, pos = beginLen(b, tagSpanStatus)
		b = append(b, tagStatusMessage)
		b = protowire.AppendString(b, validUTF8(msg))
		b = append(b, tagStatusCode, statusCodeErr)
		b = endLen(b, pos)
	}
	b = appendFlags(b)
	b = endLen(b, spanPos)

	spans := 1
	for i := range t.Waits {
		w := &t.Waits[i]
		if w.Wait == nil {
			continue
		}
		prefix := "queue "
		if w.Kind == "lookup" {
			prefix = "lookup "
		}
		var pos int
		b, pos = beginLen(b, tagScopeSpansSpan)
		b = appendIDs(b, tid, e.spanID(), root)
		b = appendName(b, prefix, w.Queue)
		b = append(b, tagSpanKind, spanKindInt)
		b = e.appendTime(b, tagSpanStart, w.StartWall)
		b = e.appendTime(b, tagSpanEnd, w.EndWall)
		b = appendStr(b, tagSpanAttr, kQueueName, w.Queue)
		b = appendStr(b, tagSpanAttr, kQueueKind, w.Kind)
		b = appendInt(b, tagSpanAttr, kQueueDelayNS, int64(w.Delay))
		b = appendInt(b, tagSpanAttr, kQueueWaitNS, w.End-w.Start)
		b = appendStr(b, tagSpanAttr, kQueueOutcome, w.Outcome)
		b = appendInt(b, tagSpanAttr, kWaitStartMonoNS, w.Start)
		b = appendInt(b, tagSpanAttr, kWaitEndMonoNS, w.End)
		b = appendFlags(b)
		b = endLen(b, pos)
		spans++
	}
	return b, spans
}

// appendTxnAttrs writes the transaction span's attributes.
func (e *encoder) appendTxnAttrs(b []byte, t *evidence.Txn) []byte {
	const tag = tagSpanAttr
	b = appendStr(b, tag, kSIPMethod, t.Method)
	if t.Final > 0 {
		b = appendInt(b, tag, kSIPStatusCode, int64(t.Final))
	}
	b = e.appendCallID(b, t.CallID)
	b = appendInt(b, tag, kSIPCSeq, int64(t.CSeq))
	b = appendStr(b, tag, kSIPViaBranch, t.Branch)
	b = appendStr(b, tag, kSIPFromTag, t.FromTag)
	total, kernel, firstIn := 0, 0, -1
	for i := range t.Msgs {
		m := &t.Msgs[i]
		if m.Msg == nil {
			continue
		}
		total++
		if m.Source == evidence.SourceKernel {
			kernel++
		}
		if firstIn < 0 && m.Dir == observe.In {
			firstIn = i
		}
	}
	if firstIn >= 0 {
		in := t.Msgs[firstIn].Msg
		if c := transport(in.Proto); c != nil {
			b = append(b, c.span...)
		}
		b = e.appendAddr(b, tag, kNetworkPeerAddress, kNetworkPeerPort, in.Peer)
		b = e.appendAddr(b, tag, kServerAddress, kServerPort, in.Local)
	}
	b = appendStr(b, tag, kTxnKind, t.Kind.String())
	b = appendInt(b, tag, kWorker, int64(t.Worker))
	switch kernel {
	case 0:
		b = append(b, cTSUser.span...)
	case total:
		b = append(b, cTSKernel.span...)
	default:
		b = appendStr(b, tag, kTSSource, TSSourceMixed)
	}
	b = appendInt(b, tag, kMsgsTotal, int64(total))
	return appendInt(b, tag, kMsgsKernel, int64(kernel))
}

// appendCallID writes sip.call_id as the redaction mode says, without
// building the hashed string.
func (e *encoder) appendCallID(b []byte, callID string) []byte {
	switch e.redact {
	case RedactNone, "":
		return appendStr(b, tagSpanAttr, kSIPCallID, callID)
	case RedactHash:
		h := hashCallID(callID)
		return appendStrBytes(b, tagSpanAttr, kSIPCallID, h[:])
	}
	return b
}

// appendMsgAttrs writes the attributes of message i's event.
func (e *encoder) appendMsgAttrs(b []byte, i int, m *evidence.Msg) []byte {
	const tag = tagEventAttr
	b = appendInt(b, tag, kMsgIndex, int64(i))
	b = appendStr(b, tag, kSIPMethod, m.Method)
	if m.Status != 0 {
		b = appendInt(b, tag, kSIPStatusCode, int64(m.Status))
	}
	if m.Dir == observe.Out {
		b = appendInt(b, tag, kMsgRelays, int64(m.Relays))
	}
	if m.Retransmission {
		b = append(b, cRetxYes...)
	} else {
		b = append(b, cRetxNo...)
	}
	if m.Source == evidence.SourceKernel {
		b = append(b, cTSKernel.event...)
		b = appendInt(b, tag, kMonoNS, m.Mono)
		b = appendInt(b, tag, kKernelMonoNS, m.Mono)
	} else {
		b = append(b, cTSUser.event...)
		b = appendInt(b, tag, kMonoNS, m.Mono)
	}
	b = appendInt(b, tag, kUserMonoNS, m.Msg.Mono)
	b = appendInt(b, tag, kPacketID, int64(m.ID)) //nolint:gosec // packet IDs are counters far below 2^63
	if c := transport(m.Proto); c != nil {
		b = append(b, c.event...)
	}
	return e.appendAddr(b, tag, kNetworkPeerAddress, kNetworkPeerPort, m.Peer)
}

// wallAt puts a monotonic time of this transaction on the wall clock,
// using the offset of its messages (one offset per process, see
// evidence.Msg.Wall).
func wallAt(t *evidence.Txn, mono int64) time.Time {
	ref := -1
	for i := range t.Msgs {
		m := &t.Msgs[i]
		if m.Msg == nil || m.Wall.IsZero() {
			continue
		}
		if m.Mono == mono {
			return m.Wall
		}
		if ref < 0 {
			ref = i
		}
	}
	if ref < 0 {
		return t.End
	}
	return t.Msgs[ref].Wall.Add(time.Duration(mono - t.Msgs[ref].Mono))
}

// violationStatus is the span status description: the first violation,
// and how many more the events hold.
func violationStatus(vs []order.Violation) string {
	s := vs[0].Kind + ": " + vs[0].String()
	if len(vs) > 1 {
		s += " (+" + strconv.Itoa(len(vs)-1) + " more)"
	}
	return s
}

// addrCache remembers the strings of the last few addresses: a proxy
// talks to few peers, and netip.Addr.String allocates.
type addrCache struct {
	ents [addrCacheSize]struct {
		addr netip.Addr
		s    string
	}
	next int
}

func (c *addrCache) str(a netip.Addr) string {
	for i := range c.ents {
		if c.ents[i].s != "" && c.ents[i].addr == a {
			return c.ents[i].s
		}
	}
	s := a.Unmap().String()
	c.ents[c.next].addr, c.ents[c.next].s = a, s
	c.next = (c.next + 1) % len(c.ents)
	return s
}
