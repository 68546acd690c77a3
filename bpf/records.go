//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
)

// Event is one captured packet, exactly the C `struct event` (generated
// by bpf2go from sipcap.c). Only Data[:CapLen] is valid; Payload returns it.
type Event = sipcapEvent

// Values of Event.Direction, Event.L4Proto and bits of Event.Flags.
const (
	DirIngress = 0
	DirEgress  = 1

	ProtoTCP = 6
	ProtoUDP = 17

	// FlagIPv4Fragment: a first IPv4 fragment (MF set). PayloadLen covers
	// this fragment only; later fragments are not captured.
	FlagIPv4Fragment = 1 << 0
	// FlagLenFromSKB: the IP length field was 0 or beyond the packet (GSO
	// or BIG TCP super-packet), so PayloadLen is derived from PktLen.
	FlagLenFromSKB = 1 << 1
)

// Payload returns the captured payload prefix, aliasing e.Data.
func (e *Event) Payload() []byte { return e.Data[:min(int(e.CapLen), len(e.Data))] }

// Src returns the source address and port; IPv4 is unmapped.
func (e *Event) Src() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.Saddr).Unmap(), e.Sport)
}

// Dst returns the destination address and port; IPv4 is unmapped.
func (e *Event) Dst() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.Daddr).Unmap(), e.Dport)
}

// bytes is e's memory, which a ring record is read into.
func (e *Event) bytes() []byte { return unsafe.Slice((*byte)(unsafe.Pointer(e)), eventSize) }

// Truncated reports whether the payload was longer than what was copied.
func (e *Event) Truncated() bool { return e.CapLen < e.PayloadLen }

const (
	eventSize       = int(unsafe.Sizeof(Event{}))
	eventHeaderSize = int(unsafe.Offsetof(Event{}.Data))
)

// Read blocks until the next event and copies it into rec. The ring
// reader writes the record straight into rec's memory, so there is one
// copy and no allocation per event. Call Read from one goroutine at a
// time. Returns ErrClosed after Close, os.ErrDeadlineExceeded after
// SetReadDeadline expires.
//
// Events arrive in ring reservation order, which across CPUs is not
// timestamp order: sort by TsNs where order matters.
func (c *Capture) Read(rec *Event) error {
	buf := rec.bytes()
	r := &c.rec
	r.RawSample = buf[:0]
	err := c.reader.ReadInto(r)
	sample := r.RawSample
	r.RawSample = nil // do not keep the caller's event reachable
	if err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return ErrClosed
		}
		return err
	}
	// A record is the event header plus CapLen payload bytes (the program
	// cuts it there), read into the front of rec. Anything else means the
	// object and this package disagree.
	n := len(sample)
	if n < eventHeaderSize || n > eventSize || unsafe.SliceData(sample) != unsafe.SliceData(buf) ||
		n != eventHeaderSize+int(rec.CapLen) {
		return fmt.Errorf("bpf: ring record of %d bytes, want %d header bytes plus the captured payload", n, eventHeaderSize)
	}
	return nil
}

// SetReadDeadline makes later Reads return os.ErrDeadlineExceeded once t
// has passed and the ring is empty; the zero time removes it. It waits for
// a Read already blocked (the ring reader holds its lock while waiting), so
// set it before Read, from the reading goroutine.
func (c *Capture) SetReadDeadline(t time.Time) { c.reader.SetDeadline(t) }

// RingBacklog returns the bytes waiting in the ring buffer and its size,
// for a fill-level metric.
func (c *Capture) RingBacklog() (pending, size int) {
	return c.reader.AvailableBytes(), c.reader.BufferSize()
}

// Counters are totals since Open, summed over CPUs.
type Counters struct {
	Seen      uint64 // packets the hooks ran on, SIP or not, both directions
	Captured  uint64 // events written to the ring
	RingDrops uint64 // matching packets lost because the ring was full
}

// Counters reads and sums the per-CPU counters.
func (c *Capture) Counters() (Counters, error) {
	var perCPU []sipcapCounters
	if err := c.objs.Stats.Lookup(uint32(0), &perCPU); err != nil {
		return Counters{}, fmt.Errorf("bpf: read counters: %w", err)
	}
	var sum Counters
	for _, v := range perCPU {
		sum.Seen += v.Seen
		sum.Captured += v.Captured
		sum.RingDrops += v.RingDrops
	}
	return sum, nil
}
