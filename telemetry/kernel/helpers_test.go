package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"sipvigil/proxy/observe"
)

var (
	proxyAP = netip.MustParseAddrPort("10.0.0.1:5060")
	peerAP  = netip.MustParseAddrPort("10.0.0.2:5070")
)

const base = int64(1_000_000_000_000) // a plausible CLOCK_MONOTONIC value

// sipMsg builds a framed SIP message of realistic size (> HashLen, with
// the distinguishing branch beyond the first bytes).
func sipMsg(first, callID string, cseq int, method string) []byte {
	body := "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	var b strings.Builder
	fmt.Fprintf(&b, "%s\r\n", first)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK-%s-%d\r\n", callID, cseq)
	fmt.Fprintf(&b, "From: <sip:alice@example.com>;tag=1234\r\nTo: <sip:bob@example.com>\r\n")
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d %s\r\n", callID, cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:alice@10.0.0.2:5070>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

func invite(callID string) []byte {
	return sipMsg("INVITE sip:bob@example.com SIP/2.0", callID, 1, "INVITE")
}

type sink struct {
	mu sync.Mutex
	ms []Match
}

func (s *sink) add(m Match) {
	s.mu.Lock()
	s.ms = append(s.ms, m)
	s.mu.Unlock()
}

func (s *sink) all() []Match {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Match(nil), s.ms...)
}

func newTestMatcher(t testing.TB, cfg Config) (*Matcher, *sink) {
	t.Helper()
	if cfg.LocalPorts == nil {
		cfg.LocalPorts = []uint16{5060}
	}
	s := &sink{}
	cfg.Text = true // the tests check the copied text too
	return NewMatcher(cfg, NewClock(), s.add), s
}

func pkt(dir observe.Direction, proto uint8, local, remote netip.AddrPort, mono int64, data []byte) *observe.Packet {
	return &observe.Packet{Dir: dir, Proto: proto, Local: local, Remote: remote, Data: data, Mono: mono}
}

// kev is a kernel event for the whole payload, fully captured.
func kev(hook Hook, proto uint8, src, dst netip.AddrPort, mono int64, payload []byte) *KernelEvent {
	return &KernelEvent{Mono: mono, Ifindex: 2, Hook: hook, Proto: proto, Src: src, Dst: dst,
		PacketLen: len(payload) + 28, PayloadLen: len(payload), Payload: payload}
}

// tcpSeg is a TCP kernel event for payload at seq.
func tcpSeg(hook Hook, src, dst netip.AddrPort, mono int64, seq uint32, payload []byte) *KernelEvent {
	ev := kev(hook, observe.ProtoTCP, src, dst, mono, payload)
	ev.TCPSeq = seq
	return ev
}

func ms(n int) int64 { return int64(n) * int64(time.Millisecond) }

func wantStats(t *testing.T, got MatcherStats, want MatcherStats) {
	t.Helper()
	// Compare only the fields the test cares about: zero in want means 0
	// is expected too, except for the input counters.
	got.KernelEvents, got.Packets = want.KernelEvents, want.Packets
	if got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
}
