// Package kernel joins the proxy's own view of every SIP message
// (observe.Packet, stamped right after the read or write syscall) with the
// kernel's view of the same bytes on the wire (one TC ingress/egress
// ring-buffer event per packet, stamped with bpf_ktime_get_ns), and turns
// kernel CLOCK_MONOTONIC time into wall time for traces.
//
// Both sides use CLOCK_MONOTONIC, so every Match carries raw nanoseconds
// (Packet.Mono and KernelMono): ordering proofs compare those and never
// depend on a wall clock. Match.Wall is a convenience for trace exporters,
// computed with one Clock offset (see Clock) so that it is a strictly
// monotone map of KernelMono between clock steps.
//
// # Which kernel events are the proxy's
//
// On the proxy's side of the wire, a message the proxy read (Dir=In) was
// seen at the ingress hook travelling remote→local, and a message it wrote
// (Dir=Out) at the egress hook travelling local→remote. "Local" means the
// port is one of Config.LocalPorts, or the address:port is a TCP endpoint
// the proxy itself reported in an observe.Packet (outbound TCP connections
// use ephemeral ports; they are learned in a small lock-free cache).
//
// On lo every packet passes the TC hooks twice: once at egress for the
// sender and once at ingress for the receiver. The copies that are not the
// proxy's side — a peer's egress towards us (hook Egress, Dst local) and our
// own egress seen again at lo ingress (hook Ingress, Src local) — are
// dropped at once and counted as OtherSide, never as unmatched. Events with
// neither endpoint local are counted as Foreign. When the peer listens on
// one of LocalPorts on the same host (e.g. both on 5060 on lo with different
// addresses), ports cannot tell the sides apart: the peer's copies are then
// taken for ours and expire as UnmatchedKernel.
//
// # Matching key
//
// key = (proto, proxy-side direction, remote address:port, local port,
// payload hash). The payload hash is maphash (seed fixed per Matcher) of the
// first min(Config.HashLen, message length) bytes of the message, which both
// sides can compute: the proxy has the whole message, the kernel event has
// a captured prefix. The local address is left out on purpose: a UDP socket
// bound to 0.0.0.0 reports the unspecified address, while the wire shows the
// concrete one. Addresses enter the key as 16 bytes, IPv4 in its mapped
// form (::ffff:a.b.c.d), so both families of a dual-stack socket match the
// wire's, and the key holds no pointer. The BPF snap length must be at least HashLen (default 256); a
// kernel event whose capture is shorter than the bytes its hash needs is
// counted as ShortCapture and dropped.
//
// Either side may arrive first: the proxy's observe call usually beats the
// ring-buffer reader even for ingress. The first side to arrive waits in a
// bounded table; the other side looks it up. Identical messages with the
// same key (retransmissions) wait in arrival order and match FIFO on both
// sides.
//
// # UDP
//
// One datagram is one message. PayloadLen must be the UDP payload length of
// the whole datagram (from the UDP header, so the first IP fragment of a
// large datagram works; later fragments must not be reported).
//
// # TCP
//
// Rule: a message's ingress time is the time of the segment carrying its
// first byte; its egress time is the time of the segment carrying its last
// byte. (At TC egress a TSO/GSO write is usually one skb, and at TC ingress
// GRO has already merged segments, so "segment" here means one TC event.)
//
// Each TCP event is cut into messages with Content-Length framing over the
// captured prefix (leading CRLF keepalives skipped, compact "l" header
// understood). For every message that starts in the event and whose first
// min(HashLen, length) bytes are captured, a kernel entry is made with that
// hash, so a second message starting mid-segment matches too, with
// Match.Offset > 0. When the last message runs past the end of the event, a
// continuation record keyed by (flow, next sequence number) remembers where
// it ends. The next event of the flow with that sequence number consumes the
// record: for egress the message's kernel entry is only created now, with
// this event's time (so an Out message spanning two segments gets the
// second segment's time); for ingress the entry was made at the first
// segment already. Scanning then resumes at the first byte after the
// message, so pipelined streams stay aligned.
//
// An event that continues no tracked message must start with a SIP start
// line ("SIP/2.0 " or an upper-case method and a space) to be scanned;
// otherwise it is counted as TCPUnaligned. Not handled, and counted:
//   - messages starting beyond the captured prefix, or whose hashed prefix
//     is not fully captured (ShortCapture; the proxy side then expires as
//     UnmatchedPacket);
//   - a message whose header end is not captured: its length is unknown, so
//     for egress it takes the first event's time and the stream loses
//     alignment until the next event that starts a message;
//   - out-of-order or lost segments: the continuation record is not found
//     (TCPUnaligned) and later expires (TCPIncomplete);
//   - TCP retransmissions: the first transmission matches; the copies wait
//     and expire as UnmatchedKernel (or TCPUnaligned), which is also a
//     useful signal.
//
// # Bounds
//
// Every table holds at most Config.MaxPending entries; its bucket array
// grows with the entries (load factor <= 1, at most the first power of two
// >= MaxPending) and never shrinks, and slots are recycled through a free
// list, so steady state does not allocate. Entries older than Config.TTL (by CLOCK_MONOTONIC, against the
// newest time seen or the time passed to Expire) expire and are counted;
// when a table is full its oldest entry is evicted and counted. Expiry runs
// inline, amortised, at most every TTL/8. All work per event is O(1) in the
// table sizes (plus a scan of the captured bytes for TCP), under one mutex,
// and the output callback runs outside it.
package kernel
