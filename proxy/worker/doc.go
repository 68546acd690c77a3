// Package worker is sipvigil's proxy core: a pinned goroutine that owns every
// transaction, timer and socket write of the Call-IDs hashed to it.
//
// One worker handles one dialog from the first byte to the last, so the order
// in which a dialog's messages were read is the order in which they are
// processed and the order in which they are written. There is no lock between
// parsing and routing and no gap between unlocking and sending, the two places
// where Kamailio and OpenSIPS let a 200 OK overtake its 180.
//
// The worker is the only clock reader for protocol timers. Transactions
// (package txn) are pure state machines that take now; the worker keeps one
// deadline heap and one time.Timer, like quic-go's connection, and fires due
// transactions on its own goroutine. Nothing here starts a goroutine per
// message.
//
// Proxy behaviour follows RFC 3261 §16 (stateful proxy) and RFC 6026:
// Via insertion with loop-detecting branches, Max-Forwards, Record-Route,
// loose routing, CANCEL, hop-by-hop ACK for non-2xx, best-response selection
// with failover across a destination set, Timer C, and stateless forwarding
// of 2xx retransmissions and stray responses.
package worker
