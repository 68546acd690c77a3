package dispatch

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sipvigil/proxy/transport"
)

type fakeInbox struct {
	got  []transport.Inbound
	full bool // refuse non-reserved offers
	dead bool // refuse everything
}

func (f *fakeInbox) Offer(in transport.Inbound, reserved bool) bool {
	if f.dead || (f.full && !reserved) {
		return false
	}
	f.got = append(f.got, in)
	return true
}

type sink struct {
	mu  sync.Mutex
	out []*sip.Response
}

func (s *sink) Send(o transport.Outbound) error {
	m, err := sip.ParseMessage(o.Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.out = append(s.out, m.(*sip.Response))
	s.mu.Unlock()
	return nil
}

func parse(t *testing.T, text string) transport.Inbound {
	t.Helper()
	text = strings.ReplaceAll(strings.TrimLeft(text, "\n"), "\n", "\r\n")
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddrPort("127.0.0.1:5061")
	m.SetSource(remote.String())
	m.SetTransport("UDP")
	return transport.Inbound{Msg: m, Proto: transport.UDP, Local: netip.MustParseAddrPort("127.0.0.1:5060"), Remote: remote}
}

const invite = `
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

`

func newTest(workers ...Inbox) (*Dispatcher, *sink) {
	s := &sink{}
	d := New(nil, NewPicker(len(workers)), nil, 7*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.Bind(workers, s)
	return d, s
}

func TestSameCallIDSameWorker(t *testing.T) {
	ws := []*fakeInbox{{}, {}, {}, {}}
	d, _ := newTest(ws[0], ws[1], ws[2], ws[3])
	for i := 0; i < 50; i++ {
		d.HandleInbound(parse(t, invite))
	}
	owners := 0
	for _, w := range ws {
		if len(w.got) > 0 {
			owners++
			if len(w.got) != 50 {
				t.Errorf("owner got %d of 50", len(w.got))
			}
		}
	}
	if owners != 1 {
		t.Fatalf("one Call-ID went to %d workers", owners)
	}
}

func TestMissingCallIDRequestGets400(t *testing.T) {
	d, s := newTest(&fakeInbox{})
	d.HandleInbound(parse(t, strings.Replace(invite, "Call-ID: c1\n", "", 1)))
	if len(s.out) != 1 || s.out[0].StatusCode != 400 || s.out[0].Reason != "Missing Call-ID" {
		t.Fatalf("got %v, want 400 Missing Call-ID", s.out)
	}
	if d.Snapshot().NoCallIDRequests != 1 {
		t.Error("not counted")
	}
}

func TestMissingCallIDResponseDroppedAndCounted(t *testing.T) {
	w := &fakeInbox{}
	d, s := newTest(w)
	d.HandleInbound(parse(t, `
SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
CSeq: 1 INVITE
Content-Length: 0

`))
	if len(s.out) != 0 || len(w.got) != 0 {
		t.Fatal("a response without Call-ID was answered or dispatched")
	}
	if d.Snapshot().NoCallIDResponses != 1 {
		t.Error("not counted")
	}
}

func TestOverloadRejectsNewDialogsButAdmitsInDialog(t *testing.T) {
	w := &fakeInbox{full: true}
	d, s := newTest(w)
	d.HandleInbound(parse(t, invite))
	if len(s.out) != 1 || s.out[0].StatusCode != 503 {
		t.Fatalf("new INVITE on a full worker got %v, want 503", s.out)
	}
	if h := s.out[0].GetHeader("Retry-After"); h == nil || h.Value() != "7" {
		t.Errorf("Retry-After = %v, want 7", h)
	}
	bye := strings.NewReplacer("INVITE sip", "BYE sip", "1 INVITE", "2 BYE", "<sip:bob@example.com>\n", "<sip:bob@example.com>;tag=b\n").Replace(invite)
	d.HandleInbound(parse(t, bye))
	if len(w.got) != 1 {
		t.Fatal("in-dialog BYE was not admitted into the reserved headroom")
	}
}

func TestDrainRejectsOnlyNewDialogs(t *testing.T) {
	w := &fakeInbox{}
	d, s := newTest(w)
	d.Drain()
	d.HandleInbound(parse(t, invite))
	if len(s.out) != 1 || s.out[0].StatusCode != 503 {
		t.Fatalf("new INVITE while draining got %v, want 503", s.out)
	}
	cancel := strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(invite)
	d.HandleInbound(parse(t, cancel))
	if len(w.got) != 1 {
		t.Fatal("CANCEL of an existing INVITE was refused while draining")
	}
}

func TestFullInboxDropsResponsesAndCountsThem(t *testing.T) {
	d, _ := newTest(&fakeInbox{dead: true})
	d.HandleInbound(parse(t, `
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

`))
	if d.Snapshot().OverloadDropped != 1 {
		t.Error("dropped response not counted")
	}
}

func TestBadMessagesCountedByReason(t *testing.T) {
	d, _ := newTest(&fakeInbox{})
	d.HandleBad(transport.UDP, netip.AddrPort{}, netip.AddrPort{}, "truncated", nil)
	d.HandleBad(transport.UDP, netip.AddrPort{}, netip.AddrPort{}, "weird", nil)
	s := d.Snapshot()
	if s.BadMessages != 2 || s.BadByReason["truncated"] != 1 || s.BadByReason["other"] != 1 {
		t.Fatalf("snapshot = %+v", s)
	}
}
