// Package lookup asks an HTTP endpoint where a call should go.
//
// Operators coming from Kamailio (http_async_client with t_suspend and
// t_continue) or OpenSIPS (async(rest_get)) route calls with a lookup
// service: number portability, least-cost routing or a tenant database
// answers "send this INVITE to 10.0.0.5" over HTTP. In sipvigil a worker
// goroutine owns every dialog hashed to it, so it must never wait on the
// network: one slow HTTP answer would stall thousands of unrelated calls
// and, worse, the order guarantee the proxy exists for. The worker
// therefore suspends the transaction, hands the request to a Client with
// Lookup (which never blocks), and continues routing on its own goroutine
// when the done callback delivers the Result back to it.
//
// A Client is a fixed pool of Concurrency goroutines fed by a bounded queue
// of QueueSize lookups, with one http.Client whose connections are kept
// alive and reused. There is no goroutine per lookup, so an endpoint
// outage costs a bounded amount of memory: when the queue is full Lookup
// returns false and the caller answers at once (OverflowResult), instead
// of piling up suspended calls. Every accepted lookup gets exactly one
// Result, also when the endpoint times out, fails, or the Client is shut
// down with lookups still queued; a suspended transaction is never
// forgotten.
//
// # Endpoint contract
//
// This is what an operator's lookup service implements.
//
// The Client sends a GET to the configured URL template, with every
// placeholder replaced by the URL-query-escaped value from the request
// (url.QueryEscape, so a space becomes "+" and "@" becomes "%40"; put
// placeholders in the query string):
//
//	{method}  request method              INVITE
//	{ruri}    Request-URI                 sip:+4930123@pbx.example.net
//	{user}    Request-URI user part       +4930123
//	{host}    Request-URI host part       pbx.example.net
//	{from}    From URI                    sip:alice@example.org
//	{to}      To URI                      sip:+4930123@example.net
//	{callid}  Call-ID                     a84b4c76e66710@pc33
//	{source}  source address of the request  192.0.2.7:5060
//
// For example the template
//
//	http://127.0.0.1:8080/route?user={user}&from={from}&src={source}
//
// becomes
//
//	GET /route?user=%2B4930123&from=sip%3Aalice%40example.org&src=192.0.2.7%3A5060
//	Accept: application/json
//
// The service answers with status 200 (any 2xx is accepted) and a JSON
// object of at most 64 KiB, in one of two forms. To route the call:
//
//	{"hops": ["10.0.0.5:5060;transport=udp", "10.0.0.6:5060", "[2001:db8::7]:5080;transport=tcp"]}
//
// The hops are tried in the given order, failing over to the next one as
// for a destination set. The hop syntax is the one of destination-set hops
// in the config file, except that the host must be an IP address: a DNS
// lookup would block the worker, and the lookup service knows the address
// anyway. To answer the call instead of routing it:
//
//	{"reply": {"code": 404, "reason": "Not Found"}}
//
// The code must be between 300 and 699. The reason may be omitted, in
// which case the RFC 3261 phrase for the code is used; it must not contain
// control characters (it ends up in the SIP status line). Other members of
// the object are ignored, so a service can add fields (a TTL, a debug id)
// without breaking older proxies.
//
// Everything else makes the lookup fail with the configured OnError reply
// (default 500 Route Lookup Failed) and an Err that says why: a transport
// error, a non-2xx status, a body over 64 KiB, invalid JSON, an object
// with both or neither of "hops" and "reply", an empty hop list, a hop
// that does not parse or names a host instead of an address, or a reply
// code outside 300–699. A lookup that takes longer than Timeout (request
// and body read together) fails with OnTimeout (default 504 Route Lookup
// Timeout).
//
// # HTTP client choices
//
// The Client uses HTTP/1.1 with keep-alive and up to MaxIdleConnsPerHost
// idle connections (default Concurrency), so in steady state each pool
// goroutine reuses one warm connection and no lookup pays for a TCP or TLS
// handshake. HTTP/2 is not negotiated: with one connection per pool
// goroutine a stalled stream delays one lookup, not all of them, and the
// number of connections to the service is predictable (at most
// Concurrency).
//
// Proxy environment variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) are
// deliberately ignored. The lookup service is part of the call path; an
// HTTP_PROXY exported for apt or a build would otherwise silently put a
// forward proxy, its latency and its failures between every INVITE and its
// route. Connect directly, or put the proxy's address in the URL.
//
// Redirects are followed (at most 10, as net/http does), all within the
// one Timeout.
package lookup
