package txn

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func headerValues(m sip.Message, name string) []string {
	var vals []string
	for _, h := range m.GetHeaders(name) {
		vals = append(vals, h.Value())
	}
	return vals
}

func TestAckForHeaders(t *testing.T) {
	invite := newInvite(t)
	final := responseTo(invite, 486)
	ack := AckFor(invite, final)

	want := []struct {
		name string
		vals []string
	}{
		{"Via", []string{"SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1"}},
		{"Route", []string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"}},
		{"Max-Forwards", []string{"70"}},
		{"From", []string{`"Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl`}},
		{"To", []string{`"Bob" <sip:bob@biloxi.example.com>;tag=resp-tag`}},
		{"Call-ID", []string{"3848276298220188511@atlanta.example.com"}},
		{"CSeq", []string{"2 ACK"}},
		{"Content-Length", []string{"0"}},
		{"Contact", nil},
		{"Content-Type", nil},
	}
	checkHeaders := func(t *testing.T, m sip.Message) {
		t.Helper()
		for _, w := range want {
			if got := headerValues(m, w.name); strings.Join(got, "\n") != strings.Join(w.vals, "\n") {
				t.Errorf("%s = %q, want %q", w.name, got, w.vals)
			}
		}
	}
	if ack.Method != sip.ACK || ack.Recipient.String() != invite.Recipient.String() {
		t.Errorf("start line = %q", ack.StartLine())
	}
	if len(ack.Body()) != 0 {
		t.Errorf("body = %q", ack.Body())
	}
	checkHeaders(t, ack)

	// It must survive the wire: serialise and parse back.
	parsed, err := sip.ParseMessage([]byte(ack.String()))
	if err != nil {
		t.Fatalf("reparse ACK: %v\n%s", err, ack)
	}
	checkHeaders(t, parsed)

	// Same branch and method mapping: the next hop's server transaction
	// matches the ACK to the INVITE.
	ik, err1 := ServerKey(invite)
	ak, err2 := ServerKey(ack)
	if err1 != nil || err2 != nil || ik != ak {
		t.Errorf("ServerKey(invite)=%q,%v ServerKey(ack)=%q,%v", ik, err1, ak, err2)
	}
}

func TestAckForFallsBackToInviteTo(t *testing.T) {
	invite := newInvite(t)
	ack := AckFor(invite, sip.NewResponse(486, "Busy Here"))
	if got := headerValues(ack, "To"); len(got) != 1 || got[0] != `"Bob" <sip:bob@biloxi.example.com>` {
		t.Errorf("To = %q", got)
	}
}

func TestCancelForHeaders(t *testing.T) {
	invite := newInvite(t)
	cancel := CancelFor(invite)
	want := []struct {
		name string
		vals []string
	}{
		{"Via", []string{"SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1"}},
		{"Route", []string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"}},
		{"Max-Forwards", []string{"70"}},
		{"From", []string{`"Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl`}},
		{"To", []string{`"Bob" <sip:bob@biloxi.example.com>`}},
		{"Call-ID", []string{"3848276298220188511@atlanta.example.com"}},
		{"CSeq", []string{"2 CANCEL"}},
		{"Content-Length", []string{"0"}},
		{"Contact", nil},
		{"Content-Type", nil},
	}
	if cancel.Method != sip.CANCEL || cancel.Recipient.String() != invite.Recipient.String() {
		t.Errorf("start line = %q", cancel.StartLine())
	}
	parsed, err := sip.ParseMessage([]byte(cancel.String()))
	if err != nil {
		t.Fatalf("reparse CANCEL: %v", err)
	}
	for _, m := range []sip.Message{cancel, parsed} {
		for _, w := range want {
			if got := headerValues(m, w.name); strings.Join(got, "\n") != strings.Join(w.vals, "\n") {
				t.Errorf("%s = %q, want %q", w.name, got, w.vals)
			}
		}
	}

	// The next hop finds the INVITE from the CANCEL; the CANCEL itself is a
	// separate transaction on both sides.
	ik, _ := ServerKey(invite)
	target, err := CancelTargetKey(cancel)
	if err != nil || target != ik {
		t.Errorf("CancelTargetKey = %q, %v; want %q", target, err, ik)
	}
	if ck, _ := ServerKey(cancel); ck == ik {
		t.Error("CANCEL server key equals INVITE's")
	}
	ick, _ := ClientKey(invite)
	cck, _ := ClientKey(cancel)
	if ick == cck {
		t.Error("CANCEL client key equals INVITE's")
	}
}

// TestBuildersShareNothing mutates every header of the built messages and
// checks the inputs are untouched: sipgo's Clone shares some pointers, the
// builders must not.
func TestBuildersShareNothing(t *testing.T) {
	invite := newInvite(t)
	final := responseTo(invite, 486)
	inviteBefore, finalBefore := invite.String(), final.String()

	mutate := func(r *sip.Request) {
		r.Recipient.User = "mallory"
		r.Recipient.UriParams = r.Recipient.UriParams.Add("x", "y")
		r.Via().Host = "evil.example.com"
		r.Via().Params.Add("branch", "z9hG4bKchanged")
		r.From().Params.Add("tag", "changed")
		r.From().Address.User = "changed"
		r.To().Params.Add("tag", "changed")
		r.To().Address.Host = "changed.example.com"
		*r.CallID() = "changed"
		r.CSeq().SeqNo = 999
		r.MaxForwards().Dec()
		*r.ContentLength() = 42
		for _, h := range r.GetHeaders("Route") {
			h.(*sip.RouteHeader).Address.Host = "changed.example.com"
		}
	}
	mutate(AckFor(invite, final))
	mutate(CancelFor(invite))

	if got := invite.String(); got != inviteBefore {
		t.Errorf("invite changed:\n%s\nwas:\n%s", got, inviteBefore)
	}
	if got := final.String(); got != finalBefore {
		t.Errorf("response changed:\n%s\nwas:\n%s", got, finalBefore)
	}
}

func TestBuildersCopyExplicitRouting(t *testing.T) {
	invite := newInvite(t)
	invite.SetDestination("203.0.113.7:5070")
	invite.SetTransport("TCP")
	for name, m := range map[string]*sip.Request{
		"ACK":    AckFor(invite, responseTo(invite, 486)),
		"CANCEL": CancelFor(invite),
	} {
		if m.Destination() != "203.0.113.7:5070" || m.Transport() != "TCP" {
			t.Errorf("%s: destination=%q transport=%q", name, m.Destination(), m.Transport())
		}
	}
}
