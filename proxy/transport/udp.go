package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sipvigil/proxy/observe"
	"time"

	"github.com/emiago/sipgo/sip"
)

// udpGroup is the set of SO_REUSEPORT sockets bound to one UDP address.
type udpGroup struct {
	addr  netip.AddrPort // configured IP with the actual bound port
	conns []*net.UDPConn
}

func (g *udpGroup) close() {
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// bindUDP binds n sockets to addr. With n > 1 it first binds a plain socket
// (no SO_REUSEPORT) and closes it again: SO_REUSEPORT would otherwise let a
// second sipvigil running as the same user join our group silently and take
// half the flows, instead of failing with "address in use" at startup. The
// probe also fixes the port when addr's port is 0.
func bindUDP(ctx context.Context, addr netip.AddrPort, n int) (*udpGroup, error) {
	netw := network("udp", addr.Addr())
	var plain net.ListenConfig
	probe, err := plain.ListenPacket(ctx, netw, addr.String())
	if err != nil {
		return nil, fmt.Errorf("udp listen %s: %w", addr, err)
	}
	uc := probe.(*net.UDPConn)
	bound := netip.AddrPortFrom(addr.Addr(), uc.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	g := &udpGroup{addr: bound}
	if n == 1 {
		g.conns = []*net.UDPConn{uc}
		return g, nil
	}
	if err := uc.Close(); err != nil {
		return nil, fmt.Errorf("udp listen %s: close probe socket: %w", bound, err)
	}
	rlc := net.ListenConfig{Control: reusePortControl}
	for i := 0; i < n; i++ {
		pc, err := rlc.ListenPacket(ctx, netw, bound.String())
		if err != nil {
			g.close()
			return nil, fmt.Errorf("udp listen %s (reuseport socket %d of %d): %w", bound, i+1, n, err)
		}
		g.conns = append(g.conns, pc.(*net.UDPConn))
	}
	return g, nil
}

// tuneBuffers sets SO_RCVBUF/SO_SNDBUF on every socket of g and returns the
// smallest grants. It logs at most one warning for the whole address, so N
// reuseport sockets do not produce N identical warnings.
func tuneBuffers(g *udpGroup, recv, send int, log *slog.Logger) (BufferSize, error) {
	bs := BufferSize{Addr: g.addr, RecvRequested: recv, SendRequested: send, RecvGranted: -1, SendGranted: -1}
	for i, c := range g.conns {
		rc, err := c.SyscallConn()
		if err != nil {
			return bs, fmt.Errorf("udp %s socket %d: %w", g.addr, i, err)
		}
		r, err := setBuffer(rc, recvBufferOpts(), recv)
		if err != nil {
			return bs, fmt.Errorf("udp %s socket %d: set receive buffer: %w", g.addr, i, err)
		}
		s, err := setBuffer(rc, sendBufferOpts(), send)
		if err != nil {
			return bs, fmt.Errorf("udp %s socket %d: set send buffer: %w", g.addr, i, err)
		}
		if bs.RecvGranted < 0 || r < bs.RecvGranted {
			bs.RecvGranted = r
		}
		if bs.SendGranted < 0 || s < bs.SendGranted {
			bs.SendGranted = s
		}
	}
	warnBuffers(bs, log)
	return bs, nil
}

// warnBuffers logs one warning when the kernel granted less than asked: a
// short receive buffer means datagrams are dropped under bursts, which shows
// up as retransmissions and lost 180s rather than as an error anywhere.
func warnBuffers(bs BufferSize, log *slog.Logger) {
	var sysctls []string
	if bs.RecvGranted < bs.RecvRequested {
		sysctls = append(sysctls, fmt.Sprintf("%s>=%d", recvBufferOpts().sysctl, bs.RecvRequested))
	}
	if bs.SendGranted < bs.SendRequested {
		sysctls = append(sysctls, fmt.Sprintf("%s>=%d", sendBufferOpts().sysctl, bs.SendRequested))
	}
	if len(sysctls) == 0 {
		return
	}
	log.Warn("udp socket buffers smaller than requested; raise the sysctl or grant CAP_NET_ADMIN",
		"addr", bs.Addr,
		"recv_requested", bs.RecvRequested, "recv_granted", bs.RecvGranted,
		"send_requested", bs.SendRequested, "send_granted", bs.SendGranted,
		"sysctl", sysctls)
}

// readUDP is the single reader of one socket: read, parse, hand over, in
// arrival order. It returns when the socket is closed.
func (t *Transport) readUDP(g *udpGroup, idx int) {
	defer t.wg.Done()
	conn := g.conns[idx]
	log := t.log.With("proto", "UDP", "local", g.addr, "socket", idx)
	// One byte more than the largest accepted datagram: a read that fills the
	// buffer proves truncation even where MSG_TRUNC is unavailable.
	buf := make([]byte, t.cfg.MaxDatagram+1)
	parser := NewParser()
	parser.MaxMessageLength = t.cfg.MaxDatagram
	pc := t.counters.proto(UDP)
	backoff := time.Duration(0)
	for {
		n, _, flags, raddr, err := conn.ReadMsgUDPAddrPort(buf, nil)
		var mono int64
		if t.obs != nil || t.cfg.PacketIDs {
			mono = observe.Monotonic()
		}
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Should not happen on an unconnected socket; back off so a
			// persistent error cannot spin a core.
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			log.Warn("udp read failed", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		remote := unmap(raddr)
		id, stamp := t.number()
		if t.obs != nil {
			t.obs.Packet(observe.Packet{ID: id, Stamp: stamp, Dir: observe.In, Proto: observe.ProtoUDP,
				Local: g.addr, Remote: remote, Data: buf[:n], Mono: mono})
		}
		if flags&msgTrunc != 0 || n > t.cfg.MaxDatagram {
			t.bad(UDP, g.addr, remote, ReasonTruncated,
				fmt.Errorf("udp datagram from %s exceeds %d bytes", remote, t.cfg.MaxDatagram))
			continue
		}
		if onlyCRLF(buf[:n]) {
			continue // keepalive (or empty datagram): nothing to parse
		}
		// Parse a copy so nothing can alias the reused read buffer.
		data := bytes.Clone(buf[:n])
		msg, err := parseDatagram(parser, data)
		if err != nil {
			reason := ReasonParse
			if errors.Is(err, sip.ErrParseReadBodyIncomplete) {
				reason = ReasonFraming
			}
			t.bad(UDP, g.addr, remote, reason, fmt.Errorf("udp parse from %s: %w", remote, err))
			continue
		}
		msg.SetTransport("UDP")
		msg.SetSource(remote.String())
		pc.received.Add(1)
		pc.receivedBytes.Add(uint64(n))
		t.h.HandleInbound(Inbound{
			Msg: msg, Proto: UDP, Local: g.addr, Remote: remote,
			Size: n, Received: now, Socket: idx, PacketID: id, Mono: mono, Stamp: stamp,
		})
	}
}

// parseDatagram parses one datagram. A panic in the parser on hostile input
// must not take the whole proxy down, so it becomes a parse error.
func parseDatagram(p *sip.Parser, data []byte) (msg sip.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("parser panic: %v", r)
		}
	}()
	return p.ParseSIP(data)
}

// onlyCRLF reports whether b holds nothing but CR and LF bytes.
func onlyCRLF(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// udpGroupFor picks the socket group a datagram from `from` must leave on.
func (t *Transport) udpGroupFor(from, to netip.AddrPort) (*udpGroup, error) {
	if g, ok := t.udpByAddr[from]; ok {
		return g, nil
	}
	if from.IsValid() {
		// A specific IP on a wildcard listener: same port, wildcard address.
		for _, g := range t.udp {
			if g.addr.Port() == from.Port() && g.addr.Addr().IsUnspecified() && familyCanReach(g.addr.Addr(), from.Addr()) {
				return g, nil
			}
		}
		return nil, fmt.Errorf("no UDP listener for %s", from)
	}
	for _, g := range t.udp {
		if familyCanReach(g.addr.Addr(), to.Addr()) {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no UDP listener can reach %s", to)
}

// familyCanReach reports whether a socket bound to local can talk to remote:
// same family, or a dual-stack IPv6 wildcard.
func familyCanReach(local, remote netip.Addr) bool {
	if local.Is4() == remote.Is4() {
		return true
	}
	return local.Is6() && local.IsUnspecified()
}

// sendUDP writes one datagram synchronously: there is no queue to reorder.
func (t *Transport) sendUDP(out Outbound) error {
	pc := t.counters.proto(UDP)
	to := unmap(out.To)
	g, err := t.udpGroupFor(unmap(out.From), to)
	if err != nil {
		pc.sendErrors.Add(1)
		return fmt.Errorf("udp send to %s: %w", to, err)
	}
	n := len(g.conns)
	conn := g.conns[((out.Socket%n)+n)%n]
	var mono int64
	if t.obs != nil {
		mono = observe.Monotonic()
	}
	if _, _, err := conn.WriteMsgUDPAddrPort(out.Data, nil, to); err != nil {
		pc.sendErrors.Add(1)
		return fmt.Errorf("udp send %s -> %s: %w", g.addr, to, err)
	}
	if t.obs != nil {
		t.obs.Packet(observe.Packet{ID: out.PacketID, Stamp: out.Stamp, Dir: observe.Out, Proto: observe.ProtoUDP, Local: g.addr, Remote: to, Data: out.Data, Mono: mono})
	}
	pc.sent.Add(1)
	pc.sentBytes.Add(uint64(len(out.Data)))
	return nil
}
