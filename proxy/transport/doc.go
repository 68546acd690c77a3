// Package transport owns sipvigil's UDP and TCP sockets.
//
// It exists because SIP dialog ordering is decided here, at the socket.
// sipvigil keeps every dialog in order by construction: each socket (each
// SO_REUSEPORT UDP socket, each TCP connection) has exactly one reader
// goroutine that reads, parses and hands each message, in arrival order, to a
// Handler that must not block. The dispatcher behind that Handler pins a
// Call-ID to a worker, and the worker calls Send itself, so one dialog's
// messages leave in processing order. Nothing in this package starts a
// goroutine per message.
//
// We use sipgo's parser and message types but not its TransportLayer: that
// layer has no idle timeouts, rewrites Via sent-by, relies on package globals
// and cannot set SO_REUSEPORT or socket buffer sizes, all of which a proxy
// carrying many dialogs needs.
//
// Outbound TCP writes go through one writer goroutine per connection with a
// bounded FIFO queue, so Send never blocks on the network yet bytes still
// leave in Send-call order.
package transport
