// Package txn implements the RFC 3261 §17 transaction state machines, with
// the RFC 6026 "Accepted" states, for a stateful SIP proxy.
//
// # Why the machines are passive
//
// Every transaction is owned by exactly one worker goroutine (the proxy pins
// a dialog's traffic to one worker), so the machines carry no locks, start
// no goroutines and arm no time.Timer. Instead, in the style of quic-go,
// every method takes the current time as an argument and the machine only
// reports what the owner must do next:
//
//   - Each transaction exposes Deadline(), the earliest pending RFC timer
//     (zero when none). The owner keeps the transactions in a deadline heap
//     and calls OnTimer(now) once now >= Deadline(). OnTimer handles every
//     timer that is due, so a late wake-up is harmless.
//   - Methods return the action to take (transmit this response, retransmit
//     the request, send the hop-by-hop ACK, synthesize a 408, forget the
//     transaction) rather than performing it; the owner holds the sockets.
//   - After any call the owner must re-read Deadline(), since events move,
//     add or cancel timers.
//
// This keeps the hot path allocation-light (no runtime timers per
// transaction), makes the state machines deterministic, and lets the tests
// drive the RFC timer tables on a fake clock without sleeping.
//
// # Zero-length timers
//
// Over reliable transports RFC 3261 sets timers D, I, J and K to zero. They
// are still armed (at now) rather than short-circuited to Terminated, so
// there is a single removal path: the owner forgets a transaction when
// OnTimer reports Terminated, or after OnTransportError leaves it in
// [Terminated].
//
// # Proxy responsibilities left to the caller
//
// The proxy core (the transaction user) still owns: sending 100 Trying for
// INVITE (pass it to [Server.Respond]), Timer C (RFC 3261 §16.6 step 11),
// CANCEL generation and matching, and synthesizing 408/503 responses when a
// client transaction times out or fails at the transport layer.
//
// Messages handed to a transaction are retained, not copied: do not mutate a
// request or response after passing it in. The builders [AckFor] and
// [CancelFor] always create fresh header values, because sipgo's Clone
// shares some header pointers (Call-ID, Max-Forwards, Content-Length, ...).
package txn
