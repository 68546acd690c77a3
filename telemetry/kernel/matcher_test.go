package kernel

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"sipvigil/proxy/observe"
)

func TestUDPBothDirectionsBothOrders(t *testing.T) {
	for _, dir := range []observe.Direction{observe.In, observe.Out} {
		for _, kernelFirst := range []bool{true, false} {
			name := dir.String() + "/packet-first"
			if kernelFirst {
				name = dir.String() + "/kernel-first"
			}
			t.Run(name, func(t *testing.T) {
				m, s := newTestMatcher(t, Config{})
				msg := invite("call-1")
				ev := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg)
				p := pkt(dir, observe.ProtoUDP, proxyAP, peerAP, base+ms(1), msg)
				if dir == observe.Out {
					ev = kev(Egress, observe.ProtoUDP, proxyAP, peerAP, base+ms(1), msg)
					p.Mono = base
				}
				if kernelFirst {
					m.AddKernel(ev)
					m.Packet(*p) // via the observe.Observer method
				} else {
					m.AddPacket(p)
					m.AddKernel(ev)
				}
				got := s.all()
				if len(got) != 1 {
					t.Fatalf("matches = %d, want 1", len(got))
				}
				mt := got[0]
				if mt.KernelMono != ev.Mono || mt.Packet.Mono != p.Mono || mt.Ifindex != 2 {
					t.Errorf("mono/ifindex = %d/%d/%d", mt.KernelMono, mt.Packet.Mono, mt.Ifindex)
				}
				if mt.Packet.Dir != dir || mt.Packet.Proto != observe.ProtoUDP || mt.Packet.Len != len(msg) ||
					mt.Packet.Local != proxyAP || mt.Packet.Remote != peerAP {
					t.Errorf("packet info = %+v", mt.Packet)
				}
				if s := mt.Packet.Summary(); s != "INVITE sip:bob@example.com SIP/2.0" {
					t.Errorf("Summary = %q", s)
				}
				if c := mt.Packet.CallID(); c != "call-1" {
					t.Errorf("CallID = %q", c)
				}
				if c := mt.Packet.CSeq(); c != "1 INVITE" {
					t.Errorf("CSeq = %q", c)
				}
				if !mt.Wall.Equal(m.clock.Wall(ev.Mono)) {
					t.Errorf("Wall = %v, want %v", mt.Wall, m.clock.Wall(ev.Mono))
				}
				if want := time.Duration(p.Mono - ev.Mono); mt.Delta() != want {
					t.Errorf("Delta = %v, want %v", mt.Delta(), want)
				}
				if mt.Offset != 0 || mt.Segments != 1 {
					t.Errorf("Offset/Segments = %d/%d", mt.Offset, mt.Segments)
				}
				wantStats(t, m.Stats(), MatcherStats{Matched: 1})
			})
		}
	}
}

func TestUDPRetransmissionsFIFO(t *testing.T) {
	for _, kernelFirst := range []bool{true, false} {
		m, s := newTestMatcher(t, Config{})
		msg := invite("retx")
		for i := range 3 {
			k := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+ms(500*i), msg)
			p := pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+ms(500*i)+10, msg)
			if kernelFirst {
				m.AddKernel(k)
			} else {
				m.AddPacket(p)
			}
		}
		for i := range 3 {
			k := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+ms(500*i), msg)
			p := pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+ms(500*i)+10, msg)
			if kernelFirst {
				m.AddPacket(p)
			} else {
				m.AddKernel(k)
			}
		}
		got := s.all()
		if len(got) != 3 {
			t.Fatalf("kernelFirst=%v: %d matches", kernelFirst, len(got))
		}
		for i, mt := range got {
			if mt.KernelMono != base+ms(500*i) || mt.Packet.Mono != base+ms(500*i)+10 {
				t.Errorf("kernelFirst=%v: match %d pairs kernel %d with packet %d", kernelFirst, i,
					mt.KernelMono-base, mt.Packet.Mono-base)
			}
		}
		wantStats(t, m.Stats(), MatcherStats{Matched: 3})
	}
}

// On lo every packet passes both hooks; the copies for the other end must
// be dropped without becoming unmatched.
func TestLoopbackOtherSide(t *testing.T) {
	lp := netip.MustParseAddrPort("127.0.0.1:5060")
	peer := netip.MustParseAddrPort("127.0.0.1:5070")
	m, s := newTestMatcher(t, Config{})
	req := invite("lo")
	resp := sipMsg("SIP/2.0 180 Ringing", "lo", 1, "INVITE")
	// peer -> proxy: peer's egress, then our ingress.
	m.AddKernel(kev(Egress, observe.ProtoUDP, peer, lp, base, req))
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peer, lp, base+1000, req))
	m.AddPacket(pkt(observe.In, observe.ProtoUDP, lp, peer, base+5000, req))
	// proxy -> peer: our egress, then the peer's ingress.
	m.AddPacket(pkt(observe.Out, observe.ProtoUDP, lp, peer, base+9000, resp))
	m.AddKernel(kev(Egress, observe.ProtoUDP, lp, peer, base+8000, resp))
	m.AddKernel(kev(Ingress, observe.ProtoUDP, lp, peer, base+8500, resp))
	// Somebody else's SIP.
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peer, netip.MustParseAddrPort("127.0.0.1:5080"), base, req))

	got := s.all()
	if len(got) != 2 || got[0].KernelMono != base+1000 || got[1].KernelMono != base+8000 {
		t.Fatalf("matches = %+v", got)
	}
	m.Expire(base + ms(10_000))
	wantStats(t, m.Stats(), MatcherStats{Matched: 2, OtherSide: 2, Foreign: 1})
}

func TestTTLExpiry(t *testing.T) {
	m, s := newTestMatcher(t, Config{TTL: time.Second})
	m.AddPacket(pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base, invite("a")))
	m.AddKernel(kev(Egress, observe.ProtoUDP, proxyAP, peerAP, base, invite("b")))
	if st := m.Stats(); st.Pending.Packet != 1 || st.Pending.Kernel != 1 {
		t.Fatalf("pending = %+v", st.Pending)
	}
	m.Expire(base + ms(999))
	if st := m.Stats(); st.UnmatchedPacket != 0 || st.UnmatchedKernel != 0 {
		t.Fatalf("expired early: %+v", st)
	}
	m.Expire(base + ms(1001))
	wantStats(t, m.Stats(), MatcherStats{UnmatchedKernel: 1, UnmatchedPacket: 1})

	// Inline expiry: a later event expires old entries without Expire, and
	// a late partner no longer matches.
	m.AddPacket(pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+ms(2000), invite("c")))
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+ms(4000), invite("d")))
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+ms(4001), invite("c")))
	if len(s.all()) != 0 {
		t.Fatal("an expired entry matched")
	}
	st := m.Stats()
	if st.UnmatchedPacket != 2 || st.Pending.Kernel != 2 {
		t.Fatalf("stats after inline expiry: %+v", st)
	}
}

func TestMaxPendingEviction(t *testing.T) {
	m, s := newTestMatcher(t, Config{MaxPending: 4})
	calls := []string{"c0", "c1", "c2", "c3", "c4", "c5"}
	for i, c := range calls {
		m.AddPacket(pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+int64(i), invite(c)))
	}
	st := m.Stats()
	if st.EvictedPacket != 2 || st.Evicted != 2 || st.Pending.Packet != 4 {
		t.Fatalf("after 6 packets: %+v", st)
	}
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+10, invite("c0"))) // evicted: waits
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+11, invite("c5")))
	if got := s.all(); len(got) != 1 || got[0].Packet.CallID() != "c5" {
		t.Fatalf("matches = %d", len(got))
	}
	for i := range 5 { // fill the kernel table past its bound
		m.AddKernel(kev(Egress, observe.ProtoUDP, proxyAP, peerAP, base+20+int64(i), invite(calls[i])))
	}
	st = m.Stats()
	if st.EvictedKernel != 2 || st.Evicted != 4 || st.Pending.Kernel != 4 || st.Matched != 1 {
		t.Fatalf("after kernel overflow: %+v", st)
	}
}

func TestIPv6AndMapped(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	p6 := netip.MustParseAddrPort("[2001:db8::1]:5060")
	r6 := netip.MustParseAddrPort("[2001:db8::2]:5070")
	msg := invite("v6")
	m.AddPacket(pkt(observe.Out, observe.ProtoUDP, p6, r6, base, msg))
	m.AddKernel(kev(Egress, observe.ProtoUDP, p6, r6, base-500, msg))

	// A dual-stack socket on [::]:5060 reports the peer as ::ffff:a.b.c.d
	// and its own address as unspecified; the wire has plain IPv4.
	any6 := netip.MustParseAddrPort("[::]:5060")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.2]:5070")
	msg2 := invite("mapped")
	m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg2))
	m.AddPacket(pkt(observe.In, observe.ProtoUDP, any6, mapped, base+700, msg2))

	got := s.all()
	if len(got) != 2 || got[0].KernelMono != base-500 || got[1].KernelMono != base {
		t.Fatalf("matches = %+v", got)
	}
	if got[1].Packet.Remote != mapped {
		t.Errorf("PacketInfo must keep the proxy's own view, got %v", got[1].Packet.Remote)
	}
}

func TestShortCaptureAndIgnored(t *testing.T) {
	m, _ := newTestMatcher(t, Config{})
	msg := invite("short")
	ev := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg)
	ev.Payload = msg[:100] // snaplen below HashLen
	m.AddKernel(ev)
	m.AddKernel(&KernelEvent{Hook: 9, Proto: observe.ProtoUDP, Src: peerAP, Dst: proxyAP})
	m.AddPacket(&observe.Packet{Dir: observe.In, Proto: 1, Local: proxyAP, Remote: peerAP})
	wantStats(t, m.Stats(), MatcherStats{ShortCapture: 1, Ignored: 2})
}

// The race detector checks concurrent AddKernel/AddPacket/Expire/Stats;
// every message must still match exactly once.
func TestConcurrent(t *testing.T) {
	m, s := newTestMatcher(t, Config{})
	const n = 2000
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = invite("conc-" + string(rune('a'+i%26)) + itoa(i))
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, b := range msgs {
			m.AddKernel(kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base+int64(i)*1000, b))
		}
	})
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				m.AddPacket(pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+int64(i)*1000+500, msgs[i]))
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			_ = m.Stats()
			m.Expire(base)
		}
	})
	wg.Wait()
	st := m.Stats()
	if st.Matched != n || len(s.all()) != n || st.Pending != (PendingStats{}) {
		t.Fatalf("stats %+v, matches %d", st, len(s.all()))
	}
	for _, mt := range s.all() {
		if mt.Packet.Mono-mt.KernelMono != 500 {
			t.Fatalf("mismatched pair: %d", mt.Packet.Mono-mt.KernelMono)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestFillTextCompactAndTruncated(t *testing.T) {
	var p PacketInfo
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	p.fillText([]byte("\r\nSIP/2.0 200 OK\r\ni: " + string(long) + "\r\nCSeq:  7 BYE \r\n\r\nCall-ID: body"))
	if p.Summary() != "SIP/2.0 200 OK" || len(p.CallID()) != callIDCap || p.CSeq() != "7 BYE" {
		t.Fatalf("summary %q callid %d cseq %q", p.Summary(), len(p.CallID()), p.CSeq())
	}
	p.fillText([]byte("BYE sip:x SIP/2.0\r\nTo: y\r\n\r\nCall-ID: in-body\r\n"))
	if p.CallID() != "" || p.CSeq() != "" {
		t.Fatalf("headers after the blank line were read: %q %q", p.CallID(), p.CSeq())
	}
}

// Without an out (production without --kernel-dump) a match builds no
// Match but still stamps the proxy's record, in either arrival order.
func TestNilOutStillStamps(t *testing.T) {
	m := NewMatcher(Config{LocalPorts: []uint16{5060}}, NewClock(), nil)
	for i, kernelFirst := range []bool{false, true} {
		msg := invite("nil-out-" + strconv.Itoa(i))
		p := pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base+500, msg)
		p.Stamp = new(observe.Stamp)
		ev := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg)
		ev.Ifindex = 3
		if kernelFirst {
			m.AddKernel(ev)
			m.AddPacket(p)
		} else {
			m.AddPacket(p)
			m.AddKernel(ev)
		}
		mono, ifindex, ok := p.Stamp.Get()
		if !ok || mono != base || ifindex != 3 {
			t.Errorf("kernelFirst=%v: stamp %d %d %v, want %d 3 true", kernelFirst, mono, ifindex, ok, base)
		}
	}
	if st := m.Stats(); st.Matched != 2 {
		t.Errorf("matched %d, want 2", st.Matched)
	}
}
