package evidence

import (
	"time"

	"sipvigil/proxy/observe"
	"sipvigil/telemetry/order"
)

// Source says where a timestamp came from.
type Source uint8

const (
	// SourceUser: the proxy's own user-space time (after the read
	// syscall, or when the worker handed the message to the transport).
	// Used when eBPF is off or the kernel event was not matched.
	SourceUser Source = iota + 1
	// SourceKernel: the TC hook's bpf_ktime_get_ns (ingress for In, egress
	// for Out).
	SourceKernel
)

func (s Source) String() string {
	if s == SourceKernel {
		return "kernel"
	}
	return "user"
}

// Txn is a transaction record with its timestamps resolved.
type Txn struct {
	*observe.Txn
	// Msgs parallels Txn.Msgs.
	Msgs []Msg
	// Waits parallels Txn.Waits.
	Waits []Wait
	// Start and End bound the transaction on the wire: the first In
	// message's time and the last Out message's time (End falls back to
	// the record's End when nothing was sent).
	Start, End time.Time
	// Violations found by the online monitor in this record, and between
	// this record and earlier ones of the same dialog.
	Violations []order.Violation
}

// Msg is one message with its best timestamp.
type Msg struct {
	*observe.Msg
	// Mono is the kernel time when Source is SourceKernel, else the
	// user-space time (observe.Msg.Mono). CLOCK_MONOTONIC ns.
	Mono   int64
	Source Source
	// Wall is Mono on the wall clock (one offset for the whole process, so
	// the conversion preserves order).
	Wall time.Time
	// Ifindex of the kernel event, 0 for SourceUser.
	Ifindex uint32
}

// Wait is one queue wait with wall times.
type Wait struct {
	*observe.Wait
	StartWall, EndWall time.Time
}
