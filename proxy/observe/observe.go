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
	Dir    Direction
	Proto  uint8          // ProtoUDP or ProtoTCP
	Local  netip.AddrPort // the proxy's address
	Remote netip.AddrPort // the peer's address
	ConnID uint64         // TCP connection, 0 for UDP
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
// retain Packet.Data.
type Observer interface {
	Packet(p *Packet)
}

// Nop is the Observer used when nothing watches.
type Nop struct{}

// Packet does nothing.
func (Nop) Packet(*Packet) {}

// Monotonic returns CLOCK_MONOTONIC in nanoseconds without a syscall: the
// runtime's vDSO clock, the same clock as bpf_ktime_get_ns, so user-space
// and kernel timestamps of one packet can be compared directly.
func Monotonic() int64 { return nanotime() }

//go:linkname nanotime runtime.nanotime
func nanotime() int64
