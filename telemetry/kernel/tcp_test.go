package kernel

import (
	"net/netip"
	"testing"

	"sipvigil/proxy/observe"
)

const isn = uint32(0xfffff000) // close to wrap-around on purpose

func tcpPkt(dir observe.Direction, mono int64, data []byte) *observe.Packet {
	p := pkt(dir, observe.ProtoTCP, proxyAP, peerAP, mono, data)
	p.ConnID = 7
	return p
}

func TestTCPOneMessagePerSegment(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	a, b := invite("t1"), sipMsg("SIP/2.0 200 OK", "t1", 1, "INVITE")
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base, isn, a))
	m.AddPacket(tcpPkt(observe.In, base+100, a))
	m.AddPacket(tcpPkt(observe.Out, base+900, b)) // packet first
	m.AddKernel(tcpSeg(Egress, proxyAP, peerAP, base+800, 1, b))
	got := s.all()
	if len(got) != 2 || got[0].KernelMono != base || got[1].KernelMono != base+800 {
		t.Fatalf("matches = %+v", got)
	}
	if got[1].Packet.ConnID != 7 || got[1].Packet.Summary() != "SIP/2.0 200 OK" {
		t.Errorf("packet info = %+v", got[1].Packet)
	}
	wantStats(t, m.Stats(), MatcherStats{Matched: 2})
}

// Two messages in one segment (pipelined reads, or the transport's
// batched writev): the second starts mid-segment and matches with its
// offset, in both directions, with a leading keepalive CRLF thrown in.
func TestTCPTwoMessagesInOneSegment(t *testing.T) {
	for _, dir := range []observe.Direction{observe.In, observe.Out} {
		m, s := newTestMatcher(t, Config{})
		a := sipMsg("SIP/2.0 180 Ringing", "two", 1, "INVITE")
		b := sipMsg("SIP/2.0 200 OK", "two", 1, "INVITE")
		seg := append(append(append([]byte("\r\n"), a...), "\r\n"...), b...)
		ev := tcpSeg(Ingress, peerAP, proxyAP, base, isn, seg)
		if dir == observe.Out {
			ev = tcpSeg(Egress, proxyAP, peerAP, base, isn, seg)
		}
		m.AddPacket(tcpPkt(dir, base+10, a))
		m.AddKernel(ev)
		m.AddPacket(tcpPkt(dir, base+20, b))
		got := s.all()
		if len(got) != 2 {
			t.Fatalf("%v: %d matches, stats %+v", dir, len(got), m.Stats())
		}
		if got[0].Offset != 2 || got[1].Offset != 2+len(a)+2 || got[1].KernelMono != base {
			t.Errorf("%v: offsets %d, %d", dir, got[0].Offset, got[1].Offset)
		}
		wantStats(t, m.Stats(), MatcherStats{Matched: 2})
	}
}

// One Out message split over two egress events takes the second one's
// time; the tail of the second event holds a whole next message.
func TestTCPEgressSpanningTwoSegments(t *testing.T) {
	for _, packetFirst := range []bool{true, false} {
		m, s := newTestMatcher(t, Config{})
		a := sipMsg("INVITE sip:bob@example.com SIP/2.0", "span", 1, "INVITE")
		b := sipMsg("BYE sip:bob@example.com SIP/2.0", "span", 2, "BYE")
		stream := append(append([]byte(nil), a...), b...)
		cut := len(a) - 20 // header end in the first event, body split
		seg1 := tcpSeg(Egress, proxyAP, peerAP, base, isn, stream[:cut])
		seg2 := tcpSeg(Egress, proxyAP, peerAP, base+ms(40), isn+uint32(cut), stream[cut:])
		if packetFirst {
			m.AddPacket(tcpPkt(observe.Out, base+ms(41), a))
			m.AddPacket(tcpPkt(observe.Out, base+ms(41), b))
			m.AddKernel(seg1)
			if len(s.all()) != 0 {
				t.Fatal("matched on the first segment of an egress message")
			}
			m.AddKernel(seg2)
		} else {
			m.AddKernel(seg1)
			m.AddKernel(seg2)
			m.AddPacket(tcpPkt(observe.Out, base+ms(41), a))
			m.AddPacket(tcpPkt(observe.Out, base+ms(41), b))
		}
		got := s.all()
		if len(got) != 2 {
			t.Fatalf("packetFirst=%v: %d matches, stats %+v", packetFirst, len(got), m.Stats())
		}
		for _, mt := range got {
			if mt.KernelMono != base+ms(40) {
				t.Errorf("%s: kernel mono %d, want the second segment's", mt.Packet.Summary(), mt.KernelMono-base)
			}
		}
		if got[0].Packet.CSeq() != "1 INVITE" || got[0].Segments != 2 || got[0].Offset != 0 {
			t.Errorf("first: %q segments %d offset %d", got[0].Packet.CSeq(), got[0].Segments, got[0].Offset)
		}
		if got[1].Segments != 1 || got[1].Offset != len(a)-cut {
			t.Errorf("second: segments %d offset %d", got[1].Segments, got[1].Offset)
		}
		wantStats(t, m.Stats(), MatcherStats{Matched: 2})
	}
}

// One In message split over two ingress events takes the first one's time;
// the continuation is consumed, and a message at the tail still matches.
func TestTCPIngressSpanningTwoSegments(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	a := invite("in-span")
	b := sipMsg("ACK sip:bob@example.com SIP/2.0", "in-span", 1, "ACK")
	stream := append(append([]byte(nil), a...), b...)
	cut := len(a) - 50
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base, isn, stream[:cut]))
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base+ms(3), isn+uint32(cut), stream[cut:]))
	m.AddPacket(tcpPkt(observe.In, base+ms(4), a))
	m.AddPacket(tcpPkt(observe.In, base+ms(4), b))
	got := s.all()
	if len(got) != 2 || got[0].KernelMono != base || got[1].KernelMono != base+ms(3) || got[1].Offset != 50 {
		t.Fatalf("matches = %+v\nstats %+v", got, m.Stats())
	}
	wantStats(t, m.Stats(), MatcherStats{Matched: 2})
}

// Events that start mid-message with no tracked context, keepalives, a
// message whose header end is beyond the capture, and one cut off by the
// snap length must not crash and must be counted.
func TestTCPUnhandledCounted(t *testing.T) {
	m, _ := newTestMatcher(t, Config{})
	a := invite("odd")
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base, 5000, a[100:]))               // mid-message
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base, 6000, []byte("\r\n\r\n")))    // keepalive
	m.AddKernel(tcpSeg(Ingress, peerAP, proxyAP, base, 7000, []byte("\r\n\r\nSIP"))) // too short to tell
	ev := tcpSeg(Ingress, peerAP, proxyAP, base, 8000, append(append([]byte(nil), a...), a...))
	ev.Payload = ev.Payload[:len(a)+10] // the second message's prefix is not captured
	m.AddKernel(ev)
	m.AddPacket(tcpPkt(observe.In, base+10, a))
	m.AddPacket(tcpPkt(observe.In, base+11, a))
	st := m.Stats()
	want := MatcherStats{Matched: 1, Ignored: 1, ShortCapture: 1, TCPUnaligned: 2,
		Pending: PendingStats{Packet: 1}}
	wantStats(t, st, want)
	m.Expire(base + ms(5000))
	want.UnmatchedPacket, want.Pending = 1, PendingStats{}
	wantStats(t, m.Stats(), want)
}

// An Out message split over two events whose second event never comes:
// counted as TCPIncomplete, and the proxy's packet as unmatched.
func TestTCPIncomplete(t *testing.T) {
	m, _ := newTestMatcher(t, Config{})
	a := invite("lost")
	m.AddPacket(tcpPkt(observe.Out, base+10, a))
	m.AddKernel(tcpSeg(Egress, proxyAP, peerAP, base, 1, a[:len(a)-20]))
	m.Expire(base + ms(5000))
	wantStats(t, m.Stats(), MatcherStats{UnmatchedPacket: 1, TCPIncomplete: 1})
}

// Outbound connections leave from an ephemeral port: learnt from the
// proxy's packets, so the events are recognised even though the peer uses
// a listen port too.
func TestTCPEphemeralLocalPort(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	local := netip.MustParseAddrPort("10.0.0.1:40000")
	uas := netip.MustParseAddrPort("10.0.0.3:5060")
	a, b := invite("eph"), sipMsg("SIP/2.0 100 Trying", "eph", 1, "INVITE")
	m.AddPacket(&observe.Packet{Dir: observe.Out, Proto: observe.ProtoTCP, Local: local, Remote: uas, Data: a, Mono: base + 10})
	m.AddKernel(tcpSeg(Egress, local, uas, base, 1, a))
	m.AddKernel(tcpSeg(Ingress, uas, local, base+ms(1), 1, b))
	m.AddPacket(&observe.Packet{Dir: observe.In, Proto: observe.ProtoTCP, Local: local, Remote: uas, Data: b, Mono: base + ms(2)})
	if got := s.all(); len(got) != 2 {
		t.Fatalf("matches = %d, stats %+v", len(got), m.Stats())
	}
	wantStats(t, m.Stats(), MatcherStats{Matched: 2})
}

// Documented limit: when the first event of an Out message ends before
// the header end, its length is unknown: the message takes the first
// event's time and the next event is unaligned.
func TestTCPEgressHeaderEndNotInFirstSegment(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	a := invite("hdr")
	m.AddKernel(tcpSeg(Egress, proxyAP, peerAP, base, 1, a[:280]))
	m.AddKernel(tcpSeg(Egress, proxyAP, peerAP, base+ms(1), 281, a[280:]))
	m.AddPacket(tcpPkt(observe.Out, base+ms(2), a))
	if got := s.all(); len(got) != 1 || got[0].KernelMono != base {
		t.Fatalf("matches = %+v", got)
	}
	wantStats(t, m.Stats(), MatcherStats{Matched: 1, TCPUnaligned: 1})
}
