// Package suspend holds suspended transactions for a fixed delay and hands
// them back to their workers: sipvigil's answer to Kamailio's
// t_suspend → mqueue → rtimer → t_continue.
//
// # Why
//
// Operators delay in-dialog re-INVITEs by about 10 ms so that a re-INVITE
// cannot overtake the ACK sent just before it. The worker (package worker)
// suspends the server transaction, parks the rest of the dialog behind it and
// enqueues a Ticket here; when the ticket falls due a consumer goroutine
// calls the release callback, which sends the ticket back to the owning
// worker, and the worker resumes routing on its own goroutine. This package
// never touches SIP: it only orders, times and counts tickets.
//
// # The Kamailio contrast
//
// Kamailio's mqueue is bounded, but a full mqueue silently evicts its oldest
// entry, so an overloaded proxy loses suspended transactions without a log
// line or a counter. Its rtimer processes poll the queue on a fixed tick and
// then loop on mq_fetch(), so the delay is "at least the tick, plus
// whatever the loop in front of you takes", and a busy loop can starve the
// other timer routes in the same process.
//
// Here:
//
//   - a full queue refuses the new entry (Enqueue returns false and counts an
//     overflow) so the worker can answer the request; nothing already
//     queued is ever dropped;
//   - consumers sleep on a time.Timer set to the exact Due of the head entry,
//     so the delay is exact to the scheduler's resolution and an idle queue
//     costs nothing: no polling tick, no goroutine per entry;
//   - everything is counted: enqueued, released, overflowed, expired,
//     cancelled, resumed, flushed, plus wait and lateness histograms.
//
// # Design
//
// Entries live in a ring buffer of Capacity slots under one mutex. Delay is
// constant per queue, so FIFO order is Due order (Enqueue raises a Due that
// would fall before the tail's, which only happens when callers stamp their
// own slightly stale clocks) and a consumer only ever waits for the head.
//
// Consumers take turns with a single "leader" token, a channel of capacity
// one: the token exists (in the channel or held by a consumer) whenever the
// ring is non-empty. The holder sleeps until the head is due, pops it,
// passes the token on if more entries wait, and only then calls release.
// So at most one consumer sleeps on the head (no thundering herd), and a
// release that blocks on a slow worker's resume channel holds up only its
// own consumer while another one keeps releasing. Each consumer releases in
// FIFO order; across consumers two release calls may run concurrently, so
// with Consumers > 1 the global call order is only approximately FIFO. (The
// worker parks a dialog behind its suspended request, so one dialog never
// has two tickets in flight.)
//
// On Linux an idle Go process sleeps in epoll_wait with a millisecond
// timeout, so a time.Timer alone fires up to 1 ms late. The leader's timer
// therefore aims 2 ms before Due and the leader sleeps the rest in
// clock_nanosleep (a blocking syscall, microsecond precision, no polling);
// see finesleep_linux.go.
//
// Flush empties the ring under the lock and calls release for every entry on
// the caller's goroutine, in FIFO order; it also kicks the sleeping leader so
// that it re-reads the head instead of waking for an entry that is gone.
package suspend
