package observe

import (
	"net/netip"
	"time"
)

// Txn is what a worker saw of one transaction: every message it received
// and sent for it, which inbound message each outbound one relays, and
// every queue wait. The worker fills it on its own goroutine and hands it
// to a TxnObserver once the transaction has nothing more to send (its
// final response went out, or, for an ACK or a stateless relay, the one
// forward). Telemetry joins kernel timestamps to the messages by packet
// ID afterwards; the worker never waits for that.
type Txn struct {
	Worker int
	CallID string
	Method string // request method (CSeq method for a stateless response relay)
	CSeq   uint32
	// Branch is the top Via branch of the request as received: the
	// transaction's identity upstream.
	Branch string
	// FromTag is the From tag of the request: with CallID it names the side
	// of the dialog that sent it (each side has its own CSeq order).
	FromTag string
	// Initial marks a request outside any dialog (no To tag): for an
	// INVITE, a new call rather than a re-INVITE.
	Initial bool
	// Kind says what the record covers.
	Kind TxnKind
	// Start is the user-space receive time of the first message, End when
	// the record was closed; CLOCK_MONOTONIC ns (see Monotonic).
	Start, End int64
	// Final is the final status sent upstream, 0 when none (ACK, stateless
	// relays, or a transaction abandoned at shutdown).
	Final int
	Msgs  []Msg
	Waits []Wait
}

// TxnKind distinguishes the records a worker produces.
type TxnKind uint8

const (
	// TxnServer is a server transaction with its client branches.
	TxnServer TxnKind = iota + 1
	// TxnAck is an ACK for a 2xx, routed end to end without a transaction.
	TxnAck
	// TxnStateless is a response relayed without a transaction (a 2xx
	// retransmission, or a response matching no branch).
	TxnStateless
)

func (k TxnKind) String() string {
	switch k {
	case TxnServer:
		return "server"
	case TxnAck:
		return "ack"
	case TxnStateless:
		return "stateless"
	}
	return "unknown"
}

// Msg is one SIP message of a transaction, as the worker handled it.
type Msg struct {
	// ID is the transport's packet ID (Packet.ID, Inbound.PacketID,
	// Outbound.PacketID): the key kernel timestamps are joined on. 0 when
	// the message never reached a socket (a send that failed).
	ID uint64
	// Stamp receives the kernel timestamp when eBPF matching is on (nil
	// otherwise).
	Stamp *Stamp
	Dir   Direction
	// Mono is the user-space time: right after the read syscall for In,
	// when the worker handed the message to the transport for Out.
	Mono   int64
	Method string // request method; for a response, its CSeq method
	Status int    // 0 for a request
	Proto  uint8  // ProtoUDP or ProtoTCP
	Local  netip.AddrPort
	Peer   netip.AddrPort
	// Relays, on an Out message, is 1 + the index in Txn.Msgs of the In
	// message it forwards; 0 when the proxy generated it (100 Trying, 408,
	// 487, a CANCEL, a hop-by-hop ACK) or retransmits it.
	Relays int
	// Retransmission marks a copy the proxy resent on a timer, or an
	// inbound retransmission it absorbed.
	Retransmission bool
}

// Wait is one suspension of the transaction's request: on a queue or an
// asynchronous lookup.
type Wait struct {
	Queue string // queue or lookup name
	Kind  string // "queue" or "lookup"
	// Start is when the request was suspended, End when the worker resumed
	// it; CLOCK_MONOTONIC ns.
	Start, End int64
	// Delay is the configured hold for a delay queue (0 otherwise).
	Delay time.Duration
	// Outcome: "released", "expired", "cancelled", "rejected", "overflow",
	// "done" (lookup answered), "error".
	Outcome string
}

// TxnObserver receives finished transaction records. Txn runs on a worker
// goroutine: it must not block, and it owns t from then on.
type TxnObserver interface {
	Txn(t *Txn)
}
