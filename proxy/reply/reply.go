// Package reply builds the responses sipvigil generates itself and decides
// where any response to a request must be sent.
//
// Both the dispatcher (stateless 400 and 503 answers on the reader) and the
// workers (100 Trying, 408, 483, 487, ...) need the same two things, and both
// must never modify the request they answer: with sipgo, a request that is
// still referenced by a transaction shares header pointers with its clones.
package reply

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/transport"
)

// ServerName goes into the Server header of generated responses.
const ServerName = "sipvigil"

// New builds a response to req. sipgo's constructor copies Via, From, To,
// Call-ID and CSeq as clones (so req is untouched), adds a To-tag to every
// non-100 response, and fills Via received/rport (RFC 3581).
func New(req *sip.Request, code int, reason string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", ServerName))
	return res
}

// WithRetryAfter adds a Retry-After header (RFC 3261 §20.33) in seconds.
func WithRetryAfter(res *sip.Response, seconds string) *sip.Response {
	if seconds != "" {
		res.AppendHeader(sip.NewHeader("Retry-After", seconds))
	}
	return res
}

// Where returns the outbound envelope (everything but Data) for responses to
// a request that arrived as in.
//
// RFC 3261 §18.2.2: over TCP the response goes back on the connection the
// request came in on (ConnID), and if that connection has gone, to the
// source address. Over UDP it goes to the source IP and, with rport
// (RFC 3581), the source port; without rport to the port in Via sent-by.
// maddr is not supported (multicast is out of scope).
func Where(in transport.Inbound, via *sip.ViaHeader) transport.Outbound {
	out := transport.Outbound{Proto: in.Proto, From: in.Local, To: in.Remote, ConnID: in.ConnID, Socket: in.Socket}
	if in.Proto == transport.UDP && via != nil {
		if _, rport := via.Params.Get("rport"); !rport {
			port := via.Port
			if port == 0 {
				port = 5060
			}
			out.To = netip.AddrPortFrom(in.Remote.Addr(), uint16(port))
		}
	}
	return out
}

// RetryAfter formats d for a Retry-After header: whole seconds, rounded
// up, at least 1 (RFC 3261 §20.33 carries no fractions).
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1))
}
