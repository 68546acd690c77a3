// Package order decides whether a proxy kept SIP messages in order.
//
// The rules are the evidence sipvigil exists to produce, so they live in
// one place: the online monitor (telemetry/evidence) runs them on every
// transaction as it completes, and `sipvigil audit` runs the same code on
// traces read back from a backend.
//
// A Forward is one message the proxy relayed, with the time it entered and
// the time it left. Times are CLOCK_MONOTONIC nanoseconds from one host
// (kernel timestamps when eBPF is on), so they are comparable without any
// wall clock. Two forwards are out of order when the one that entered first
// left last.
package order

import "fmt"

// Violation kinds, the values of the `kind` label of
// sipvigil_order_violations_total.
const (
	// ResponseReorder: two responses of one transaction left in the
	// opposite order to the one they arrived in (e.g. 183 and 180).
	ResponseReorder = "response_reorder"
	// ProvisionalAfterFinal: a 1xx left after a final response of the same
	// transaction (the 180-after-200 bug), whatever order they arrived in.
	ProvisionalAfterFinal = "provisional_after_final"
	// RequestReorder: two requests of one dialog, sent by the same side,
	// left in the opposite order to the one they arrived in (e.g. a
	// re-INVITE that overtook the ACK in front of it).
	RequestReorder = "request_reorder"
)

// Kinds lists every violation kind, for pre-declaring metric series.
var Kinds = []string{ResponseReorder, ProvisionalAfterFinal, RequestReorder}

// Forward is one relayed message.
type Forward struct {
	In, Out int64 // entered and left, monotonic ns (kernel when Kernel)
	// Kernel says In and Out are both kernel timestamps. UserIn and
	// UserOut are the proxy's own times of the same two messages (0 when
	// unknown). Two forwards are compared on kernel times only when both
	// have them: a kernel interval is wider than the same message's user
	// interval (the wire is before the read and after the write), so
	// mixing the two could invent a reorder that never happened.
	Kernel          bool
	UserIn, UserOut int64
	Method          string // request method; for a response its CSeq method
	Status          int    // 0 for a request
	CSeq            uint32
	Ref             int // caller's reference (e.g. message index), returned as is
}

// Label is how a forward is named in reports: "INVITE" or "180".
func (f Forward) Label() string {
	if f.Status == 0 {
		return f.Method
	}
	return fmt.Sprintf("%d", f.Status)
}

// Violation is one pair of forwards that left in the wrong order. First
// is the one that should have left first.
type Violation struct {
	Kind          string
	First, Second Forward
}

// String describes the violation for span events and logs.
func (v Violation) String() string {
	switch v.Kind {
	case ProvisionalAfterFinal:
		return fmt.Sprintf("%s left %d ns after %s (final)", v.Second.Label(), v.Second.Out-v.First.Out, v.First.Label())
	default:
		return fmt.Sprintf("%s entered %d ns before %s but left %d ns after it",
			v.First.Label(), v.Second.In-v.First.In, v.Second.Label(), v.First.Out-v.Second.Out)
	}
}

// Responses checks the responses one transaction relayed upstream, in any
// order. Each unordered pair yields at most one violation.
func Responses(fw []Forward) []Violation { return everyPair(fw, responsePair) }

// everyPair applies check to each unordered pair of fw.
func everyPair(fw []Forward, check func(a, b Forward) (Violation, bool)) []Violation {
	var out []Violation
	for i := range fw {
		for j := i + 1; j < len(fw); j++ {
			if v, ok := check(fw[i], fw[j]); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// comparable returns the pair's times on one clock: kernel if both have
// it, else user-space if both know it, else whatever was given.
func comparable(a, b Forward) (Forward, Forward) {
	if (a.Kernel && b.Kernel) || a.UserIn == 0 || a.UserOut == 0 || b.UserIn == 0 || b.UserOut == 0 {
		return a, b
	}
	a.In, a.Out, b.In, b.Out = a.UserIn, a.UserOut, b.UserIn, b.UserOut
	return a, b
}

func responsePair(a, b Forward) (Violation, bool) {
	a, b = comparable(a, b)
	// A provisional leaving after a final is wrong whatever the arrival
	// order: a proxy must not forward a 1xx once the transaction is done.
	if a.Status < 200 && b.Status >= 200 && a.Out > b.Out {
		return Violation{Kind: ProvisionalAfterFinal, First: b, Second: a}, true
	}
	if b.Status < 200 && a.Status >= 200 && b.Out > a.Out {
		return Violation{Kind: ProvisionalAfterFinal, First: a, Second: b}, true
	}
	if a.In > b.In {
		a, b = b, a
	}
	if a.In < b.In && a.Out > b.Out {
		return Violation{Kind: ResponseReorder, First: a, Second: b}, true
	}
	return Violation{}, false
}

// Requests checks requests of one dialog sent by one side (same Call-ID
// and From tag), one forward per request. Each unordered pair yields at
// most one violation.
func Requests(fw []Forward) []Violation { return everyPair(fw, RequestPair) }

// RequestPair checks two requests of one dialog and side.
func RequestPair(a, b Forward) (Violation, bool) {
	a, b = comparable(a, b)
	if a.In > b.In {
		a, b = b, a
	}
	if a.In < b.In && a.Out > b.Out {
		return Violation{Kind: RequestReorder, First: a, Second: b}, true
	}
	return Violation{}, false
}
