package transport

import (
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/observe"
)

// Reasons passed to Handler.HandleBad. The set is fixed so that it can be
// used as a metric label without unbounded cardinality.
const (
	// ReasonParse: the bytes are not a syntactically valid SIP message.
	ReasonParse = "parse"
	// ReasonTruncated: a UDP datagram was larger than MaxDatagram (the kernel
	// cut it), or a TCP peer closed the connection in the middle of a message.
	ReasonTruncated = "truncated"
	// ReasonTooLarge: a TCP message exceeded MaxMessageSize; the connection is closed.
	ReasonTooLarge = "too_large"
	// ReasonFraming: the message boundary cannot be determined (TCP message
	// without Content-Length, or a UDP Content-Length larger than the
	// datagram). On TCP the connection is closed because the stream cannot be
	// resynchronised.
	ReasonFraming = "framing"
)

// numReasons is the number of distinct HandleBad reasons.
const numReasons = 4

// BadReasons returns every reason HandleBad can report, e.g. to pre-register
// metric label values.
func BadReasons() []string {
	return []string{ReasonParse, ReasonTruncated, ReasonTooLarge, ReasonFraming}
}

// reasonIndex maps a reason to its counter slot, in BadReasons order.
func reasonIndex(r string) int {
	switch r {
	case ReasonTruncated:
		return 1
	case ReasonTooLarge:
		return 2
	case ReasonFraming:
		return 3
	default:
		return 0
	}
}

// Inbound is one parsed SIP message together with where and when it arrived.
type Inbound struct {
	// Msg is the parsed message. Msg.Transport() and Msg.Source() are set.
	Msg   sip.Message
	Proto Proto
	// Local is the listening address the message arrived on (for a wildcard
	// listener, the wildcard address); for TCP the connection's local address.
	Local netip.AddrPort
	// Remote is the peer address, with 4-in-6 addresses unmapped.
	Remote netip.AddrPort
	// ConnID identifies the TCP connection (0 for UDP); pass it back in
	// Outbound.ConnID to answer on the same connection.
	ConnID uint64
	// Size is the number of wire bytes of this message.
	Size int
	// Received is the user-space receive time, taken right after the read
	// syscall returned.
	Received time.Time
	// PacketID is set only with Config.PacketIDs, Mono also while an
	// observer watches (0 otherwise): the ID the observer saw for this
	// message (observe.Packet.ID) and its CLOCK_MONOTONIC receive time.
	PacketID uint64
	Mono     int64
	// Stamp is the kernel-timestamp slot handed to the observer (nil
	// unless both an observer and Config.PacketIDs are set).
	Stamp *observe.Stamp
	// Socket is the index (0..UDPSockets()-1) of the UDP socket the datagram
	// was read from; 0 for TCP.
	Socket int
}

// Handler receives everything the readers produce.
type Handler interface {
	// HandleInbound runs inline on the reader goroutine, in arrival order.
	// It must not block: a slow handler stalls that socket or connection.
	HandleInbound(in Inbound)
	// HandleBad reports bytes that were not a parseable SIP message. reason
	// is one of the Reason* constants.
	HandleBad(proto Proto, local, remote netip.AddrPort, reason string, err error)
}

// Outbound is one serialized SIP message to send.
type Outbound struct {
	Proto Proto
	// From is a listen address. UDP datagrams leave from a socket bound to it
	// so the Via sent-by matches; TCP dials bind From's IP with port 0.
	// A zero From picks the first listener of To's address family (UDP only).
	From netip.AddrPort
	To   netip.AddrPort
	// Socket selects which of the reuseport UDP sockets writes (modulo N).
	Socket int
	// ConnID prefers this TCP connection if it is still open (responses go
	// back on the connection the request came in on, RFC 3261 §18.2.2).
	ConnID uint64
	// PacketID is handed to the observer with this message
	// (observe.Packet.ID) so telemetry can join it to the sender's records.
	// Callers number their messages with the top bit set (1<<63 | …);
	// the transport's own inbound IDs stay below that.
	PacketID uint64
	// Stamp, if set, is handed to the observer with the message.
	Stamp *observe.Stamp
	// Data is a complete serialized SIP message. The transport copies it for
	// TCP and does not retain it after Send returns, so the caller may reuse it.
	Data []byte
	// OnError, if set, is called for failures detected after Send returned:
	// TCP dial failure, write failure, connection closed with the message
	// still queued. It runs on a transport goroutine and must not block.
	// It is not called when Send itself returns an error.
	OnError func(error)
}
