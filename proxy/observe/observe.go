// Package observe is the narrow hook through which telemetry watches SIP
// traffic without the SIP path depending on telemetry.
//
// The transport reports every SIP message it reads or writes as a Packet.
// An Observer must not block and must not keep Packet.Data: it is the
// transport's buffer. With no observer configured the transport uses Nop,
// so calls flow the same with or without eBPF, traces or metrics.
package observe

import (
	"net/netip"
	"sync/atomic"
	_ "unsafe" // for go:linkname to runtime.nanotime
)

// Direction of a packet as seen by the proxy.
type Direction uint8

const (
	// In is a message the proxy read from a socket.
	In Direction = iota + 1
	// Out is a message the proxy wrote to a socket.
	Out
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// IP protocol numbers, as in the kernel's 5-tuple.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Packet is one SIP message read or written by the proxy.
type Packet struct {
	// ID identifies the message across the transport, the worker's
	// transaction records (Msg.ID) and kernel timestamps. Unique per
	// process; 0 when the sender did not assign one.
	ID     uint64
	Dir    Direction
	Proto  uint8          // ProtoUDP or ProtoTCP
	Local  netip.AddrPort // the proxy's address
	Remote netip.AddrPort // the peer's address
	ConnID uint64         // TCP connection, 0 for UDP
	// Stamp, if not nil, is where the kernel timestamp of this message goes
	// once telemetry has matched it (see Stamp).
	Stamp *Stamp
	// Data is the whole message. Valid only during the call.
	Data []byte
	// Mono is CLOCK_MONOTONIC in nanoseconds, the clock eBPF's
	// bpf_ktime_get_ns uses: right after the read syscall returned (In),
	// or right before the write syscall was made (Out). So for every
	// message kernel ingress < Mono(In) and Mono(Out) < kernel egress.
	Mono int64
}

// Observer receives packets. Implementations must be safe for concurrent
// use (every reader and writer calls it), must not block and must not
// retain Packet.Data. The packet is passed by value: a pointer handed
// through an interface escapes, which would cost a heap allocation per
// message on the transport's hot path.
type Observer interface {
	Packet(p Packet)
}

// Nop is the Observer used when nothing watches.
type Nop struct{}

// Packet does nothing.
func (Nop) Packet(Packet) {}

// Monotonic returns CLOCK_MONOTONIC in nanoseconds without a syscall: the
// runtime's vDSO clock, the same clock as bpf_ktime_get_ns, so user-space
// and kernel timestamps of one packet can be compared directly.
func Monotonic() int64 { return nanotime() }

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Stamp carries one message's kernel timestamp from the eBPF matcher to
// whoever recorded the message (a worker's transaction record), without a
// lookup table: the sender allocates it, the matcher fills it whenever the
// kernel event turns up (before or after the proxy handled the message),
// and the reader looks once the record is complete. Safe for concurrent
// use.
type Stamp struct {
	mono    atomic.Int64
	ifindex atomic.Uint32
}

// Set records the kernel time (bpf_ktime_get_ns) and interface.
func (s *Stamp) Set(mono int64, ifindex uint32) {
	s.ifindex.Store(ifindex)
	s.mono.Store(mono)
}

// Get returns the kernel time and interface; ok is false until Set.
func (s *Stamp) Get() (mono int64, ifindex uint32, ok bool) {
	if s == nil {
		return 0, 0, false
	}
	mono = s.mono.Load()
	return mono, s.ifindex.Load(), mono != 0
}
