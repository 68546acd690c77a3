package kernel

import (
	"fmt"
	"testing"

	"sipvigil/proxy/observe"
)

// newBenchMatcher is configured as in production: no text copies and no
// out (a match only sets the packet's Stamp).
func newBenchMatcher() *Matcher {
	return NewMatcher(Config{LocalPorts: []uint16{5060}}, NewClock(), nil)
}

// BenchmarkMatchUDP is one proxy packet plus its kernel event (packet
// first, as in production), ending in a match.
func BenchmarkMatchUDP(b *testing.B) {
	m := newBenchMatcher()
	msg := invite("bench")
	p := pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base, msg)
	ev := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		mono := base + int64(i)*1000
		p.Mono, ev.Mono = mono+500, mono
		m.AddPacket(p)
		m.AddKernel(ev)
	}
	if st := m.Stats(); st.Matched != uint64(b.N) && b.N > 0 {
		b.Fatalf("matched %d of %d", st.Matched, b.N)
	}
}

// BenchmarkMatchUDPKernelFirst is the other arrival order.
func BenchmarkMatchUDPKernelFirst(b *testing.B) {
	m := newBenchMatcher()
	msg := invite("bench")
	p := pkt(observe.Out, observe.ProtoUDP, proxyAP, peerAP, base, msg)
	ev := kev(Egress, observe.ProtoUDP, proxyAP, peerAP, base, msg)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		mono := base + int64(i)*1000
		p.Mono, ev.Mono = mono+500, mono
		m.AddKernel(ev)
		m.AddPacket(p)
	}
}

// BenchmarkMatchTCP is one TCP segment holding one message, plus the packet.
func BenchmarkMatchTCP(b *testing.B) {
	m := newBenchMatcher()
	msg := invite("bench")
	p := tcpPkt(observe.In, base, msg)
	ev := tcpSeg(Ingress, peerAP, proxyAP, base, 1, msg)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		mono := base + int64(i)*1000
		p.Mono, ev.Mono = mono+500, mono
		ev.TCPSeq += uint32(len(msg))
		m.AddPacket(p)
		m.AddKernel(ev)
	}
}

// BenchmarkMatchUDPParallel measures contention on the one mutex.
func BenchmarkMatchUDPParallel(b *testing.B) {
	m := newBenchMatcher()
	msg := invite("bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		p := pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base, msg)
		ev := kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msg)
		mono := base
		for pb.Next() {
			mono += 1000
			p.Mono, ev.Mono = mono+500, mono
			m.AddPacket(p)
			m.AddKernel(ev)
		}
	})
}

// BenchmarkMatchUDPDrain is the production pattern: the reader drains the
// ring every 2 ms, so the proxy's packets for that long wait in the table
// (at 5,000 calls/s about 140 on each side), each with its own Stamp, and
// then meet their kernel events in one burst. One op is one message.
func BenchmarkMatchUDPDrain(b *testing.B) {
	const batch = 256
	m := newBenchMatcher()
	msgs := make([][]byte, batch)
	pkts := make([]*observe.Packet, batch)
	evs := make([]*KernelEvent, batch)
	for i := range batch {
		msgs[i] = invite(fmt.Sprintf("drain-%d", i))
		pkts[i] = pkt(observe.In, observe.ProtoUDP, proxyAP, peerAP, base, msgs[i])
		pkts[i].Stamp = new(observe.Stamp)
		evs[i] = kev(Ingress, observe.ProtoUDP, peerAP, proxyAP, base, msgs[i])
	}
	b.ReportAllocs()
	mono := base
	for i := 0; b.Loop(); i++ {
		j := i % batch
		if j == 0 && i > 0 {
			for _, ev := range evs {
				mono += 1000
				ev.Mono = mono
				m.AddKernel(ev)
			}
		}
		mono += 1000
		pkts[j].Mono = mono
		m.AddPacket(pkts[j])
	}
	if st := m.Stats(); st.Matched < uint64(b.N)-batch && b.N > batch {
		b.Fatalf("matched %d of %d", st.Matched, b.N)
	}
}
