package txn

import "github.com/emiago/sipgo/sip"

// AckFor builds the hop-by-hop ACK for a non-2xx final response to invite
// (RFC 3261 §17.1.1.3): same Request-URI, Call-ID and From as the INVITE,
// CSeq with the INVITE's number and method ACK, a single Via equal to the
// INVITE's top Via (same branch, so the next hop's server transaction
// matches it), To from the response (carrying the remote tag), the INVITE's
// Route headers, Max-Forwards 70 and Content-Length 0.
//
// Every header is a fresh value: mutating the ACK never alters invite or
// final. Headers missing from the inputs are left out rather than causing a
// panic; a nil invite yields nil. Explicitly set transport, destination and
// local address are carried over, since the ACK must take the INVITE's path.
func AckFor(invite *sip.Request, final *sip.Response) *sip.Request {
	if invite == nil {
		return nil
	}
	ack := sip.NewRequest(sip.ACK, *invite.Recipient.Clone())
	ack.SipVersion = invite.SipVersion
	if via := invite.Via(); via != nil {
		ack.AppendHeader(via.Clone())
	}
	appendRoutes(ack, invite)
	appendMaxForwards(ack)
	if from := invite.From(); from != nil {
		ack.AppendHeader(sip.HeaderClone(from))
	}
	var to *sip.ToHeader
	if final != nil {
		to = final.To()
	}
	if to == nil {
		to = invite.To()
	}
	if to != nil {
		ack.AppendHeader(sip.HeaderClone(to))
	}
	appendCallID(ack, invite)
	appendCSeq(ack, invite, sip.ACK)
	appendZeroContentLength(ack)
	copyRouting(ack, invite)
	return ack
}

// CancelFor builds a CANCEL for req (RFC 3261 §9.1): same Request-URI,
// Call-ID, To and From, CSeq with the request's number and method CANCEL, a
// single Via equal to the request's top Via (same branch: the next hop
// matches the CANCEL to the INVITE by it), the request's Route headers,
// Max-Forwards 70 and Content-Length 0.
//
// Every header is a fresh value: mutating the CANCEL never alters req.
// Headers missing from req are left out rather than causing a panic; a nil
// req yields nil. Explicitly set transport, destination and local address
// are carried over, since the CANCEL must go where the request went.
func CancelFor(req *sip.Request) *sip.Request {
	if req == nil {
		return nil
	}
	cancel := sip.NewRequest(sip.CANCEL, *req.Recipient.Clone())
	cancel.SipVersion = req.SipVersion
	if via := req.Via(); via != nil {
		cancel.AppendHeader(via.Clone())
	}
	appendRoutes(cancel, req)
	appendMaxForwards(cancel)
	if from := req.From(); from != nil {
		cancel.AppendHeader(sip.HeaderClone(from))
	}
	if to := req.To(); to != nil {
		cancel.AppendHeader(sip.HeaderClone(to))
	}
	appendCallID(cancel, req)
	appendCSeq(cancel, req, sip.CANCEL)
	appendZeroContentLength(cancel)
	copyRouting(cancel, req)
	return cancel
}

func appendRoutes(dst, src *sip.Request) {
	for _, h := range src.GetHeaders("Route") {
		dst.AppendHeader(sip.HeaderClone(h))
	}
}

func appendMaxForwards(dst *sip.Request) {
	maxForwards := sip.MaxForwardsHeader(70)
	dst.AppendHeader(&maxForwards)
}

// appendCallID copies the Call-ID by value: sipgo's clone of a Call-ID
// header returns the same pointer.
func appendCallID(dst, src *sip.Request) {
	if h := src.CallID(); h != nil {
		callID := sip.CallIDHeader(string(*h))
		dst.AppendHeader(&callID)
	}
}

func appendCSeq(dst, src *sip.Request, method sip.RequestMethod) {
	if h := src.CSeq(); h != nil {
		dst.AppendHeader(&sip.CSeqHeader{SeqNo: h.SeqNo, MethodName: method})
	}
}

func appendZeroContentLength(dst *sip.Request) {
	length := sip.ContentLengthHeader(0)
	dst.AppendHeader(&length)
}

// copyRouting carries over only explicitly set routing metadata; the
// computed defaults derive from Via, Route and the Request-URI, which the
// new request shares with src anyway.
func copyRouting(dst, src *sip.Request) {
	if tp := src.MessageData.Transport(); tp != "" {
		dst.SetTransport(tp)
	}
	if dest := src.MessageData.Destination(); dest != "" {
		dst.SetDestination(dest)
	}
	dst.Laddr = src.Laddr
}
