package kernel

import (
	"net/netip"
	"time"

	"sipvigil/proxy/observe"
)

// Hook is the TC hook an event was captured at.
type Hook uint8

const (
	// Ingress is TC ingress: the packet arrived on Ifindex.
	Ingress Hook = iota + 1
	// Egress is TC egress: the packet leaves through Ifindex.
	Egress
)

func (h Hook) String() string {
	switch h {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return "unknown"
}

// KernelEvent is one SIP packet seen by a TC program. The lead's adapter
// fills it from the generated ring-buffer record.
type KernelEvent struct {
	Mono       int64 // bpf_ktime_get_ns (CLOCK_MONOTONIC)
	Ifindex    uint32
	Hook       Hook
	Proto      uint8 // observe.ProtoTCP or observe.ProtoUDP
	Src, Dst   netip.AddrPort
	PacketLen  int    // whole packet
	PayloadLen int    // L4 payload length on the wire (UDP: the datagram's)
	TCPSeq     uint32 // sequence number of the first payload byte (TCP only)
	// Payload is the captured prefix of the L4 payload (at most snaplen
	// bytes). Valid only during AddKernel: the matcher hashes it and keeps
	// nothing.
	Payload []byte
}

// Caps of the text kept per message with Config.Text.
const (
	summaryCap = 128
	callIDCap  = 128
	cseqCap    = 32
)

// PacketInfo is a copy of the proxy-side facts of one message, safe to keep
// (the observe.Packet's Data is not). The Matcher makes one only when it
// has an out to hand a Match to (a dump or a test); in production a
// waiting packet keeps just its Stamp. The text a dump wants lives behind
// a pointer that is nil unless Config.Text.
type PacketInfo struct {
	Dir    observe.Direction
	Proto  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort
	ConnID uint64
	ID     uint64         // observe.Packet.ID
	Stamp  *observe.Stamp // filled with the kernel time on match
	Mono   int64          // proxy's CLOCK_MONOTONIC ns (after read / after write)
	Len    int            // message length

	text *msgText // Config.Text only
}

// msgText is the part of a message a dump prints. Fixed arrays, so one
// allocation per message holds all of it; longer values are truncated.
type msgText struct {
	summaryLen, callIDLen, cseqLen uint8
	summary                        [summaryCap]byte
	callID                         [callIDCap]byte
	cseq                           [cseqCap]byte
}

// Summary is the message's first line without CRLF, e.g.
// "INVITE sip:x@y SIP/2.0" or "SIP/2.0 180 Ringing" (at most 128 bytes),
// or "" unless the Matcher keeps text (Config.Text).
func (p *PacketInfo) Summary() string {
	if p.text == nil {
		return ""
	}
	return string(p.text.summary[:p.text.summaryLen])
}

// CallID is the Call-ID header value, or "" if not in the message or
// without Config.Text.
func (p *PacketInfo) CallID() string {
	if p.text == nil {
		return ""
	}
	return string(p.text.callID[:p.text.callIDLen])
}

// CSeq is the CSeq header value, e.g. "1 INVITE", or "" (as CallID).
func (p *PacketInfo) CSeq() string {
	if p.text == nil {
		return ""
	}
	return string(p.text.cseq[:p.text.cseqLen])
}

// Match is one proxy message joined with its kernel event.
type Match struct {
	Packet PacketInfo
	// KernelMono is bpf_ktime_get_ns at the proxy's side of the wire: the
	// ingress hook for Dir=In, the egress hook for Dir=Out (for TCP: the
	// segment with the first byte for In, with the last byte for Out).
	KernelMono int64
	Ifindex    uint32
	// Wall is KernelMono converted with the Clock's current offset.
	Wall time.Time
	// Offset is where the message starts in its first TCP segment's
	// payload (0 for UDP and for messages at a segment boundary).
	Offset int
	// Segments is the number of kernel events the message spans (1 unless
	// an Out TCP message was split).
	Segments int
}

// Delta is Packet.Mono - KernelMono: for In the time from the ingress hook
// to the end of the read syscall (positive: queueing in the kernel), for
// Out minus the time from the start of the write syscall to the egress
// hook (negative: the proxy hands a message over before it hits the wire).
func (m *Match) Delta() time.Duration { return time.Duration(m.Packet.Mono - m.KernelMono) }

// Config bounds the matcher. Zero values take the defaults.
type Config struct {
	// TTL: an unmatched entry older than this expires and is counted
	// (default 2s). It must exceed the ring-buffer reader's worst lag.
	TTL time.Duration
	// MaxPending bounds each table (kernel side, proxy side, TCP
	// continuations); beyond it the oldest entry is evicted and counted
	// (default 65536).
	MaxPending int
	// LocalPorts are the proxy's SIP listen ports. An ingress event to one
	// of them, or an egress event from one, is the proxy's own packet.
	LocalPorts []uint16
	// Text copies each message's first line, Call-ID and CSeq into its
	// PacketInfo (Summary, CallID, CSeq) for dumps. Off by default: it is
	// a header scan per message that traces do not need (the workers'
	// records carry those facts).
	Text bool
	// HashLen is how many leading payload bytes identify a message
	// (default 256). The BPF snap length must be at least this.
	HashLen int
}

// Defaults.
const (
	DefaultTTL        = 2 * time.Second
	DefaultMaxPending = 65536
	DefaultHashLen    = 256
)

// PendingStats is the number of entries waiting in each table.
type PendingStats struct {
	Kernel, Packet, TCPContinuations int
}

// MatcherStats are cumulative counters (since NewMatcher) and current
// table sizes.
type MatcherStats struct {
	KernelEvents uint64 // every AddKernel call
	Packets      uint64 // every AddPacket call
	Matched      uint64
	// Expired after TTL without a partner.
	UnmatchedKernel, UnmatchedPacket uint64
	// Evicted because a table was full (Evicted is the sum).
	Evicted, EvictedKernel, EvictedPacket uint64
	OtherSide                             uint64 // lo copies that are not the proxy's side
	Foreign                               uint64 // neither endpoint is the proxy's
	Ignored                               uint64 // not UDP/TCP, bad direction or hook, empty payload
	ShortCapture                          uint64 // capture shorter than the bytes a hash needs
	// TCPUnaligned counts TCP events that neither continue a tracked
	// message nor start with a SIP start line.
	TCPUnaligned uint64
	// TCPIncomplete counts continuation records that expired or were
	// evicted: a split message whose next segment never came.
	TCPIncomplete uint64
	Pending       PendingStats
}
