package txn

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Errors returned by the key functions. A proxy answers a request it cannot
// key with 400 Bad Request.
var (
	ErrNilMessage = errors.New("txn: nil message")
	ErrNoVia      = errors.New("txn: message has no Via header")
	ErrNoBranch   = errors.New("txn: top Via has no RFC 3261 branch (z9hG4bK...)")
	ErrNoCSeq     = errors.New("txn: message has no CSeq header")
	ErrNoMethod   = errors.New("txn: request has no method")
)

// keySeparator cannot occur in a branch token, a host or a method, so keys
// built from different fields can never collide.
const keySeparator = "|"

// ServerKey returns the server transaction key of a request (RFC 3261
// §17.2.3): top Via branch, sent-by (host lowercased, default port filled
// in) and the request method, where ACK maps to INVITE so that the ACK for a
// non-2xx final finds its INVITE transaction. CANCEL keeps its own method:
// it is a transaction of its own (use CancelTargetKey to find the INVITE it
// cancels).
//
// sipgo's sip.ServerTxKeyMake is not used because it falls back to RFC 2543
// matching when the branch lacks the magic cookie; such peers are out of
// scope here, so this returns ErrNoBranch instead.
func ServerKey(req *sip.Request) (string, error) {
	if req == nil {
		return "", ErrNilMessage
	}
	method := req.Method
	if method == sip.ACK {
		method = sip.INVITE
	}
	return serverKey(req, method)
}

// CancelTargetKey returns the server key of the transaction a CANCEL request
// targets (RFC 3261 §9.2): the CANCEL's own key with method INVITE.
func CancelTargetKey(cancel *sip.Request) (string, error) {
	if cancel == nil {
		return "", ErrNilMessage
	}
	return serverKey(cancel, sip.INVITE)
}

func serverKey(req *sip.Request, method sip.RequestMethod) (string, error) {
	if method == "" {
		return "", ErrNoMethod
	}
	via := req.Via()
	if via == nil {
		return "", ErrNoVia
	}
	branch, ok := rfc3261Branch(via)
	if !ok {
		return "", ErrNoBranch
	}
	port := via.Port
	if port <= 0 {
		port = sip.DefaultPort(via.Transport)
	}
	var b strings.Builder
	b.Grow(len(branch) + len(via.Host) + len(method) + 8)
	b.WriteString(branch)
	b.WriteString(keySeparator)
	b.WriteString(strings.ToLower(via.Host))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(port))
	b.WriteString(keySeparator)
	b.WriteString(string(method))
	return b.String(), nil
}

// ClientKey returns the client transaction key of a message (RFC 3261
// §17.1.3): the top Via branch and the CSeq method. For the request a client
// transaction sends it names that transaction; for a response it names the
// transaction the response belongs to (responses to CANCEL carry method
// CANCEL and so never match the INVITE). sent-by is not part of the key
// because the top Via of a response is the one this proxy inserted.
func ClientKey(m sip.Message) (string, error) {
	switch v := m.(type) {
	case nil:
		return "", ErrNilMessage
	case *sip.Request:
		if v == nil {
			return "", ErrNilMessage
		}
	case *sip.Response:
		if v == nil {
			return "", ErrNilMessage
		}
	}
	cseq := m.CSeq()
	if cseq == nil {
		return "", ErrNoCSeq
	}
	if cseq.MethodName == "" {
		return "", ErrNoMethod
	}
	via := m.Via()
	if via == nil {
		return "", ErrNoVia
	}
	branch, ok := rfc3261Branch(via)
	if !ok {
		return "", ErrNoBranch
	}
	return branch + keySeparator + string(cseq.MethodName), nil
}

// rfc3261Branch returns the Via branch if it carries the RFC 3261 magic
// cookie and something after it. Parameter names are case-insensitive
// (RFC 3261 §7.3.1), so "Branch=" is accepted too.
func rfc3261Branch(via *sip.ViaHeader) (string, bool) {
	for _, kv := range via.Params {
		if !strings.EqualFold(kv.K, "branch") {
			continue
		}
		branch := kv.V
		if len(branch) > len(sip.RFC3261BranchMagicCookie) &&
			strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
			return branch, true
		}
		return "", false
	}
	return "", false
}
