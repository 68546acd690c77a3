// Package route makes the proxy's routing decisions: which route a request
// matches and, for that route's destination set, which hops to try in
// which order.
//
// It is separate from the transaction and transport code so the decision
// is pure and testable: a Router is built once from an immutable
// config.Config and never changes, so every worker reads it without
// locks. The only mutable shared state is hop health (Health), written by
// the OPTIONS prober and by workers reporting passive failures, and read
// on every request; it is kept in atomics so the read path never blocks.
//
// Semantics follow Kamailio's dispatcher module where operators expect
// them (probing thresholds, 408/503 treated as failure), with one
// deliberate difference: hops that are down are not dropped from the
// failover list but moved to its end, so a request is still tried
// somewhere rather than answered with a blind 503 when every hop looks
// down (for example right after a network blip that failed all probes).
//
// The Router also holds the suspend rules (Router.SuspendQueue): which
// requests wait in a suspend queue before they are routed. Like routes,
// they are compiled once in New and only read afterwards; with no rules
// configured the check is a single length test. A Route either names a
// destination set (Route.Set) or an HTTP route lookup (Route.Lookup) that
// the worker runs asynchronously; the router itself never does I/O.
package route
