package transport

import (
	"net/netip"
	"sync/atomic"
)

// protoCounters are the live per-protocol atomics.
type protoCounters struct {
	received, receivedBytes atomic.Uint64
	sent, sentBytes         atomic.Uint64
	sendErrors              atomic.Uint64
	bad                     [numReasons]atomic.Uint64
}

// counters are the live atomics behind Counters; updated on the hot path
// without locks.
type counters struct {
	udp, tcp        protoCounters
	tcpAccepted     atomic.Uint64
	tcpDialed       atomic.Uint64
	tcpDialFailures atomic.Uint64
	tcpIdleClosed   atomic.Uint64
	tcpPongs        atomic.Uint64
	tcpOpen         atomic.Int64
}

func (c *counters) proto(p Proto) *protoCounters {
	if p == TCP {
		return &c.tcp
	}
	return &c.udp
}

// ProtoCounters is a snapshot of one protocol's message counters.
type ProtoCounters struct {
	Received      uint64 // SIP messages handed to HandleInbound
	ReceivedBytes uint64
	Sent          uint64 // SIP messages written to the socket
	SentBytes     uint64
	SendErrors    uint64            // failed sends, synchronous or via OnError
	Bad           map[string]uint64 // by HandleBad reason; every reason present
}

// BufferSize reports the socket buffer sizes of one UDP listen address. The
// granted values are what getsockopt returns halved (Linux doubles the
// request for bookkeeping), so they compare directly with the request; they
// are the smallest across the address's reuseport sockets.
type BufferSize struct {
	Addr          netip.AddrPort
	RecvRequested int
	RecvGranted   int
	SendRequested int
	SendGranted   int
}

// Counters is a point-in-time snapshot of the transport's counters.
type Counters struct {
	UDP, TCP          ProtoCounters
	TCPAccepted       uint64 // inbound connections accepted
	TCPDialed         uint64 // outbound connections established
	TCPDialFailures   uint64
	TCPIdleClosed     uint64 // connections closed by TCPIdleTimeout
	TCPKeepalivePongs uint64 // RFC 5626 CRLF pongs sent
	TCPOpen           int64  // connections currently open or dialing
	Buffers           []BufferSize
}

func (p *protoCounters) snapshot() ProtoCounters {
	s := ProtoCounters{
		Received:      p.received.Load(),
		ReceivedBytes: p.receivedBytes.Load(),
		Sent:          p.sent.Load(),
		SentBytes:     p.sentBytes.Load(),
		SendErrors:    p.sendErrors.Load(),
		Bad:           make(map[string]uint64, numReasons),
	}
	for _, r := range BadReasons() {
		s.Bad[r] = p.bad[reasonIndex(r)].Load()
	}
	return s
}

// Counters returns a snapshot of all counters.
func (t *Transport) Counters() Counters {
	c := &t.counters
	return Counters{
		UDP:               c.udp.snapshot(),
		TCP:               c.tcp.snapshot(),
		TCPAccepted:       c.tcpAccepted.Load(),
		TCPDialed:         c.tcpDialed.Load(),
		TCPDialFailures:   c.tcpDialFailures.Load(),
		TCPIdleClosed:     c.tcpIdleClosed.Load(),
		TCPKeepalivePongs: c.tcpPongs.Load(),
		TCPOpen:           c.tcpOpen.Load(),
		Buffers:           append([]BufferSize(nil), t.buffers...),
	}
}
